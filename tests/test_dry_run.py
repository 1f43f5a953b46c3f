"""`prune-cli adapt --dry-run`: every check adapt makes before it starts, then the jobs it would run;
nothing is run or written."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import assert_one_line_error, read_metrics, run_cli, tiny_overrides

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
    assert "the sweep's 8 jobs" in said and "6 jobs would run (2 skipped as repeats) into sweep folder outputs/multirun/" in said
    assert f"sst2 data: {Path(overrides[0].split('=', 1)[1]) / 'SST-2'}" in said and f"model: {tiny_model_dir}" in said
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"│\s+(\d+) │ sst2 │ (\w+)", planned.output)}
    skipped_plan = {int(m.group(1)) for m in re.finditer(r"│\s+(\d+) │ sst2 │ finetune .*no, as job \d+", planned.output)}
    assert sorted(rows) == list(range(8)) and len(skipped_plan) == 2

    ran = run_cli("adapt", *GRID, *overrides)
    assert ran.exit_code == 0, ran.output
    skipped_run = {int(n) for n in re.findall(r"skipped sweep job (\d+): finetune ignores sparsity", _said(ran))}
    assert skipped_run == skipped_plan
    runs = [p.parent for p in (in_tmp / "outputs" / "multirun").rglob("metrics.json")]
    assert len(runs) == 6 and sorted(read_metrics(run)["method"] for run in runs) == ["finetune"] * 2 + ["random"] * 4


def test_a_dry_run_of_one_run_names_its_budget_data_and_folder(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "--dry-run", "--method", "adapt_by_pruning_paper", *tiny_overrides(tiny_model_dir, "trainer.max_steps=null"))
    assert result.exit_code == 0, result.output
    said = _said(result)
    assert "the run" in said and "adapt_by_pruning_paper" in said and "3 epochs, batch 8" in said  # the recipe's own budget
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
    assert_one_line_error(run_cli("adapt", "--dry-run", "--resume", str(in_tmp)),
                          f"--dry-run plans a new run or sweep; `prune-cli report {in_tmp}` says where the runs there stand")


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
