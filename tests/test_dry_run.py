"""`prune-cli adapt --dry-run`: every check adapt makes before it starts, then the jobs it would run;
nothing is run or written."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURE_GLUE, assert_one_line_error, read_metrics, run_cli, tiny_overrides

from prune_cli import rundir
from prune_cli.hydra_entry import plan_adapt, plan_resume

GRID = ["-m", "--method", "finetune,random", "--sparsity", "0.3,0.9", "--seed", "1,2"]


def _said(result) -> str:
    return " ".join(result.output.split())


def test_a_dry_run_lists_the_jobs_a_sweep_runs_and_the_sweep_then_runs_exactly_those(in_tmp: Path, tiny_model_dir: Path):
    """The plan names the repeats a sweep over sparsities skips (a dense reference ignores
    sparsity) by the key the running sweep claims them by, so the two cannot disagree: the same
    command without --dry-run runs the jobs marked to run and skips the others."""
    overrides = tiny_overrides(tiny_model_dir, steps=2)
    planned = run_cli("adapt", "--dry-run", *GRID, *overrides)
    assert planned.exit_code == 0, planned.output
    assert not (in_tmp / "outputs").exists(), "a dry run writes nothing"
    said = _said(planned)
    assert "the sweep's 8 jobs" in said and "8 jobs (6 to run, 2 skipped (repeats)) in sweep folder outputs/multirun/" in said
    assert f"sst2 data: {Path(overrides[0].split('=', 1)[1]) / 'SST-2'}" in said and f"model: {tiny_model_dir}" in said
    plan = plan_adapt(["method=finetune,random", "sparsity=0.3,0.9", "seed=1,2", *overrides], multirun=True)
    assert [job.number for job in plan.jobs] == list(range(8)) and sum(job.runs for job in plan.jobs) == 6
    skipped_plan = {job.number for job in plan.jobs if job.action.startswith("skipped, as job")}
    assert len(skipped_plan) == 2 and all(plan.jobs[n].cfg.method.name == "finetune" for n in skipped_plan)

    ran = run_cli("adapt", *GRID, *overrides)
    assert ran.exit_code == 0, ran.output
    skipped_run = {int(n) for n in re.findall(r"skipped sweep job (\d+): finetune ignores sparsity", _said(ran))}
    assert skipped_run == skipped_plan
    runs = [p.parent for p in (in_tmp / "outputs" / "multirun").rglob("metrics.json")]
    assert len(runs) == 6 and sorted(read_metrics(run)["method"] for run in runs) == ["finetune"] * 2 + ["random"] * 4


def test_a_sweep_of_one_job_is_said_in_the_singular(in_tmp: Path, tiny_model_dir: Path):
    planned = run_cli("adapt", "--dry-run", "-m", *tiny_overrides(tiny_model_dir, steps=2))
    assert planned.exit_code == 0, planned.output
    assert "dry run, nothing run or written: 1 job (1 to run) in sweep folder outputs/multirun/" in _said(planned), planned.output


def test_a_plan_names_each_jobs_other_settings_apart_from_its_columns(in_tmp: Path, tiny_model_dir: Path):
    """From Python too (`prune_cli.api.plan`, with adapt's checks of its arguments)."""
    from prune_cli import api
    from prune_cli.errors import UserError

    plan = api.plan(sparsity="0.5,0.9", model=tiny_model_dir, overrides=["head.lr=1e-3,2e-3", *(o for o in tiny_overrides(tiny_model_dir) if not o.startswith("model."))],
                    multirun=True)
    assert [job.settings for job in plan.jobs] == ["head.lr=0.001", "head.lr=0.002"] * 2  # as Hydra writes them; sparsity has a column
    assert [float(job.cfg.sparsity) for job in plan.jobs] == [0.5, 0.5, 0.9, 0.9]
    assert not (in_tmp / "outputs").exists()
    with pytest.raises(UserError, match="overrides takes a list of strings"):
        api.plan(task="sst2", overrides="trainer.max_steps=3")


def test_a_dry_run_of_one_run_names_its_budget_data_and_folder(in_tmp: Path, tiny_model_dir: Path):
    """A local GLUE folder's training rows are read (24 in the fixture's SST-2), so the budget is
    said in the steps the run takes: the recipe's 3 epochs of 24 rows in batches of 8 are 9."""
    from prune_cli.display import budget

    overrides = tiny_overrides(tiny_model_dir, "trainer.max_steps=null")
    result = run_cli("adapt", "--dry-run", "--method", "adapt_by_pruning_paper", *overrides)
    assert result.exit_code == 0, result.output
    said = _said(result)
    assert "the run" in said and "adapt_by_pruning_paper" in said and "9 steps" in said
    [job] = plan_adapt(["method=adapt_by_pruning_paper", *overrides], multirun=False).jobs
    assert budget(job.cfg.trainer, job.train_rows) == "9 steps (3 epochs), batch 8"  # the recipe's own budget
    assert f"sst2 data: {FIXTURE_GLUE / 'SST-2'} (24 training rows)" in said
    assert "dry run, nothing run or written: the run would write outputs/sst2/adapt_by_pruning_paper/s0.5/" in said
    assert not (in_tmp / "outputs").exists()


def test_a_dry_run_refuses_what_adapt_refuses_and_fails_on_missing_data(in_tmp: Path, tiny_model_dir: Path):
    """It makes adapt's own checks (a key one swept method lacks), and goes further where a run
    would only stop once started: a data folder that is not there ends it as an error, after the
    plan, so a script can check a sweep before it queues it."""
    assert_one_line_error(run_cli("adapt", "--dry-run", "-m", "--method", "adapt_by_pruning,finetune", "method.t_small=2",
                                  *tiny_overrides(tiny_model_dir)),
                          "sweep job 1 (method=finetune): config key 'method.t_small' does not exist")
    missing = in_tmp / "no-glue"
    result = run_cli("adapt", "--dry-run", "--task", "cola", *tiny_overrides(tiny_model_dir, f"data.dir={missing}"))
    assert_one_line_error(result, f"the run would stop: cola data {missing / 'CoLA'} (missing: no such folder)")
    assert "the run" in result.output  # the plan is shown first
    assert not (in_tmp / "outputs").exists()


def test_a_dry_run_says_each_jobs_steps_and_stops_on_a_row_the_runs_would_stop_on(in_tmp: Path, tiny_model_dir: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch):
    """The steps a budget of steps or epochs comes to, job by job, as the runs count them (SST-2's
    24 rows cut to 10 by data.max_train_samples: 2 batches of 8 an epoch); a train file the runs
    would stop on stops the dry run, naming its line, before the sweep is queued; data on the hub
    is not downloaded, its budget said as configured."""
    from prune_cli import data
    from prune_cli.display import budget

    glue = Path(shutil.copytree(FIXTURE_GLUE, in_tmp / "glue"))
    overrides = ["task=sst2,mrpc", "data.max_train_samples=null,10", "trainer.epochs=2",
                 *tiny_overrides(tiny_model_dir, f"data.dir={glue}", "trainer.max_steps=5")]
    result = run_cli("adapt", "--dry-run", "-m", *overrides)
    assert result.exit_code == 0, result.output
    plan = plan_adapt(overrides, multirun=True)
    mrpc_rows = len(data.load_task_data(dict(plan.jobs[-1].cfg.task), {"dir": str(glue)}).train)
    assert [(job.cfg.task.name, job.train_rows) for job in plan.jobs] == [("sst2", 24), ("sst2", 10), ("mrpc", mrpc_rows), ("mrpc", 10)]
    assert [budget(job.cfg.trainer, job.train_rows) for job in plan.jobs[:2]] == ["5 steps (1.67 epochs), batch 8", "4 steps (2 epochs), batch 8"]
    assert f"sst2 data: {glue / 'SST-2'} (10–24 training rows, as the jobs cut them)" in _said(result)

    train = glue / "MRPC" / "train.tsv"
    train.write_text(train.read_text() + "1\tonly two columns\n")
    assert_one_line_error(run_cli("adapt", "--dry-run", "-m", *overrides), f"{train}:", "malformed row")
    assert not (in_tmp / "outputs").exists()

    monkeypatch.setattr(data, "load_from_hub", lambda task: pytest.fail("a dry run downloaded the hub's rows"))
    result = run_cli("adapt", "--dry-run", *[o for o in tiny_overrides(tiny_model_dir) if not o.startswith("data.dir=")])
    assert result.exit_code == 0, result.output
    assert "sst2 data: nyu-mll/glue/sst2 on the datasets hub" in _said(result)
    [job] = plan_adapt([o for o in tiny_overrides(tiny_model_dir) if not o.startswith("data.dir=")], multirun=False).jobs
    assert job.train_rows is None and budget(job.cfg.trainer, job.train_rows) == "6 steps or 5 epochs, batch 8"


def test_where_a_plan_says_data_and_models_come_from(tmp_path: Path, monkeypatch):
    """The hub is named as such (only its download can check it); a local folder is checked."""
    from prune_cli import backbone, data
    from prune_cli.config import compose

    monkeypatch.delenv("GLUE_DIR", raising=False)
    task = dict(compose(["task=sst2"]).task)
    assert data.data_source(task, {"dir": None}) == ("nyu-mll/glue/sst2 on the datasets hub", True)
    pinned = {**task, "hub": {**task["hub"], "revision": "v2"}}
    assert data.data_source(pinned, {"dir": None}) == ("nyu-mll/glue/sst2 on the datasets hub at revision v2", True)
    own = {"name": "reviews", "glue_dir": None, "tsv": None, "hub": {"dataset": str(tmp_path / "reviews")}}
    assert data.data_source(own, {"dir": None}) == (f"{tmp_path / 'reviews'} (missing: no such folder)", False)
    (tmp_path / "reviews").mkdir()
    assert data.data_source(own, {"dir": None}) == (str(tmp_path / "reviews"), True)
    assert backbone.model_source({"name_or_path": "bert-base-uncased", "revision": "abc"}) == (
        "bert-base-uncased on the Hugging Face hub at revision abc", True)
    assert backbone.model_source({"name_or_path": str(tmp_path / "gone")}) == (f"{tmp_path / 'gone'} (missing: it does not exist)", False)
    packaged, there = backbone.model_source({"name_or_path": backbone.PACKAGED_MINILM})
    assert there == packaged.startswith(f"{backbone.PACKAGED_MINILM} (/")  # its folder, or how to install it


def test_a_dry_run_of_resume_says_what_the_continued_sweep_then_does(in_tmp: Path, tiny_model_dir: Path):
    """`--resume SWEEP --dry-run` reads each job's folder as the continued sweep does: a finished
    job is kept, a stopped one resumes from its checkpoint, one that never ran runs, a repeat is
    skipped; the continued sweep then does exactly that. A stopped single run says where it goes on from."""
    overrides = tiny_overrides(tiny_model_dir, "checkpoint.every_steps=2", "checkpoint.keep=true", steps=4)
    assert run_cli("adapt", *GRID, *overrides).exit_code == 0
    [sweep] = (in_tmp / "outputs" / "multirun").iterdir()
    runs = {(read_metrics(p.parent)["method"], read_metrics(p.parent)["sparsity_requested"], read_metrics(p.parent)["seed"]): p.parent
            for p in sweep.rglob("metrics.json")}
    (runs[("random", 0.3, 1)] / "metrics.json").unlink()  # stopped after its last checkpoint
    shutil.rmtree(runs[("random", 0.9, 2)])  # as if it never started

    planned = run_cli("adapt", "--resume", str(sweep), "--dry-run")
    assert planned.exit_code == 0, planned.output
    plan = plan_resume(sweep)
    actions = {(str(job.cfg.method.name), float(job.cfg.sparsity), int(job.cfg.seed)): job.action for job in plan.jobs}
    assert actions[("random", 0.3, 1)] == "resumes after step 4 of phase 'head'"
    assert actions[("random", 0.9, 2)] == "runs"
    assert sorted(action for action in actions.values() if action.startswith("kept")) == ["kept: finished"] * 4
    assert sum(action.startswith("skipped, as job") for action in actions.values()) == 2
    assert "1 to resume" in _said(planned) and "1 to run" in _said(planned) and "4 kept (finished)" in _said(planned)
    assert not (runs[("random", 0.9, 2)]).exists(), "a dry run writes nothing"
    shutil.rmtree(sweep / rundir.SWEEP_FOLDERS)  # a sweep from before jobs recorded their folders: read from each run's Hydra settings
    assert [job.action for job in plan_resume(sweep).jobs] == [job.action for job in plan.jobs]

    continued = run_cli("adapt", "--resume", str(sweep))
    assert continued.exit_code == 0, continued.output
    said = _said(continued)
    kept = {int(n) for n in re.findall(r"skipped sweep job (\d+): finished already", said)}
    assert kept == {job.number for job in plan.jobs if job.action == "kept: finished"}
    assert f"resuming {runs[('random', 0.3, 1)]} from 'head' after step 4" in said
    assert len(list(sweep.rglob("metrics.json"))) == 6

    single = in_tmp / "single"
    assert run_cli("adapt", *overrides, f"hydra.run.dir={single}").exit_code == 0
    (single / "metrics.json").unlink()
    result = run_cli("adapt", "--resume", str(single), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"the run in {single} resumes after step 4 of phase 'head'" in _said(result)
    assert not (single / "metrics.json").exists()
