"""scripts/reproduce.sh's bookkeeping, with a stand-in CLI: which cells run, skip, resume, and how many at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reproduce.sh"

# Records each call, counts the calls running at that moment, and finishes the run like adapt would.
FAKE_CLI = r'''
import json, os, sys, time
from pathlib import Path
log = Path(os.environ["FAKE_LOG"])
running = log.parent / "running"
running.mkdir(exist_ok=True)
me = running / str(os.getpid())
me.touch()
args = sys.argv[1:]
edit = os.environ.get("FAKE_EDIT_SCRIPT")
if edit and args[0] == "adapt" and not (log.parent / "edited").exists():  # an editor saving in place
    (log.parent / "edited").touch()
    text = Path(edit).read_text()
    with open(edit, "r+") as f:
        f.write("#!/usr/bin/env bash\n" + "# a comment added while the grid runs\n" * 8 + text.split("\n", 1)[1])
if args[0] == "adapt":
    run_dir = Path(args[args.index("--resume") + 1]) if "--resume" in args else Path(next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")))
    if os.environ.get("FAKE_BUSY") and os.environ["FAKE_BUSY"] in str(run_dir):  # another process is running that cell
        me.unlink()
        sys.exit(75)
    record = {"args": args, "omp": os.environ.get("OMP_NUM_THREADS"), "concurrent": len(list(running.iterdir()))}
    read = [a.split("=", 1)[1] for a in args if a.startswith("method.mask_run=")]
    if read:  # a cell that reads another run: was that run finished when this one started?
        record["read_finished"] = (Path(read[0]) / "metrics.json").exists()
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0.8")))  # long enough that two lanes started together overlap even on a loaded machine
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text("{}")
else:
    record = {"args": args}
with open(log, "a") as f:
    f.write(json.dumps(record) + "\n")
me.unlink()
'''


def run_script(tmp_path: Path, jobs: int, root: Path, script: Path = SCRIPT, cwd: Path | None = None,
               **overrides: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The script with the stand-in CLI, whatever its status: its process, and the calls it made.
    `cwd`: the folder it runs in (by default this one, the repository's root)."""
    fake = tmp_path / "fake_cli.py"
    fake.write_text(FAKE_CLI)
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PRUNE_CLI": f"{sys.executable} {fake}", "PYTHON": sys.executable, "FAKE_LOG": str(log), "JOBS": str(jobs),
           "TASKS": "sst2", "SEEDS": "1", "SPARSITIES": "0.5", "METHODS": "adapt_by_pruning magnitude random", "ABLATIONS": "paper-init", **overrides}
    done = subprocess.run(["bash", str(script), str(root), str(tmp_path / "report")], env=env, capture_output=True, text=True, timeout=120,
                          cwd=cwd)
    return done, [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def run_grid(tmp_path: Path, jobs: int, root: Path, script: Path = SCRIPT, cwd: Path | None = None, **overrides: str) -> list[dict]:
    """run_script for a call that must succeed: the calls it made."""
    done, calls = run_script(tmp_path, jobs, root, script, cwd, **overrides)
    assert done.returncode == 0, done.stdout + done.stderr
    return calls


def lane_threads(jobs: int) -> int:
    """What reproduce.sh gives each lane: cores / JOBS, at least one."""
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def cell(call: dict) -> str:
    args = call["args"]
    if "--resume" in args:
        return args[args.index("--resume") + 1]
    return next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))


def overrides(args: list[str]) -> set[str]:
    """The overrides that decide a run's result (trainer.progress only decides the display)."""
    return {a for a in args if a.startswith(("method.", "head.", "trainer.", "method=")) and not a.startswith("trainer.progress=")}


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_cell_runs_once_then_the_report(tmp_path: Path, jobs: int):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, jobs, root)
    adapt, report = calls[:-1], calls[-1]
    assert report["args"][:2] == ["report", str(root)]  # last, after every job has finished
    expected = {f"{root}/sst2/{m}/s{s}/seed1" for m, s in
                [("finetune", "0.0"), ("adapt_by_pruning", "0.5"), ("magnitude", "0.5"), ("random", "0.5"), ("feature_extraction", "0.0")]}
    expected.add(f"{root}/sst2/ablation/paper-init/seed1")
    assert sorted(cell(c) for c in adapt) == sorted(expected)
    assert max(c["concurrent"] for c in adapt) <= jobs
    if jobs == 1:
        assert not any("trainer.num_threads" in a for c in adapt for a in c["args"])
    else:
        assert all(f"trainer.num_threads={lane_threads(jobs)}" in c["args"] for c in adapt)
        assert max(c["concurrent"] for c in adapt) == jobs  # the lanes really overlap


def test_finished_cells_are_skipped_and_killed_ones_resumed(tmp_path: Path):
    root = tmp_path / "runs"
    finished = root / "sst2" / "finetune" / "s0.0" / "seed1"
    killed = root / "sst2" / "magnitude" / "s0.5" / "seed1"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    (killed / ".hydra").mkdir(parents=True)
    (killed / ".hydra" / "config.yaml").write_text("seed: 1\n")
    calls = run_grid(tmp_path, 2, root)[:-1]
    assert str(finished) not in [cell(c) for c in calls]
    resumed = [c for c in calls if "--resume" in c["args"]]
    assert [cell(c) for c in resumed] == [str(killed)]
    assert resumed[0]["omp"] == str(lane_threads(2))  # the stored config cannot take the override


def test_a_cell_another_process_is_running_is_named_busy_and_the_grid_goes_on(tmp_path: Path):
    """Two copies of the script on one root (two terminals, two sittings that overlap): a cell the
    other copy is running ends with prune-cli's exit code 75 (in use), named BUSY, not FAILED, and
    every other cell still runs."""
    root = tmp_path / "runs"
    done, calls = run_script(tmp_path, 1, root, FAKE_BUSY="/magnitude/")
    assert done.returncode == 0, done.stdout + done.stderr
    busy = f"{root}/sst2/magnitude/s0.5/seed1"
    assert f"BUSY: {busy} (another prune-cli process is running it: left to that one; run this script again once it ends)" in done.stderr
    assert "FAILED" not in done.stderr
    assert {cell(c) for c in calls[:-1]} == {f"{root}/sst2/{m}/s{s}/seed1" for m, s in [("finetune", "0.0"), ("adapt_by_pruning", "0.5"),
                                              ("random", "0.5"), ("feature_extraction", "0.0")]} | {f"{root}/sst2/ablation/paper-init/seed1"}


def test_ablations_reported_over_three_seeds_run_on_three_by_default(tmp_path: Path):
    """One command must rebuild every ablation row docs/results.md reports, including the 3-seed ones."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS="paper-init prune-longer")[:-1]
    cells = [cell(c) for c in calls]
    ablations = f"{root}/sst2/ablation"
    assert sorted(cells) == sorted([f"{ablations}/paper-init/seed1"] + [f"{ablations}/prune-longer/seed{s}" for s in (1, 2, 3)])
    assert max(i for i, c in enumerate(cells) if c.endswith("seed1")) < min(i for i, c in enumerate(cells) if not c.endswith("seed1"))


def test_ablation_seeds_in_the_environment_replace_every_list_and_run_each_cell_once(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS="paper-init prune-longer", ABLATION_SEEDS="2")[:-1]
    ablations = f"{root}/sst2/ablation"
    assert sorted(cell(c) for c in calls) == [f"{ablations}/paper-init/seed2", f"{ablations}/prune-longer/seed2"]


def test_ablations_listed_for_another_task_run_there_too_at_their_sparsity(tmp_path: Path):
    """The longer-ramp probes at s = 0.7 and 0.9 (docs/results.md) come from the same one command."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS="paper-init mean-pooling-s0.9 prune-longer-s0.9 prune-longer-s0.7")[:-1]
    probes = [f"{root}/{task}/ablation/prune-longer-s0.9/seed{seed}" for task in ("mrpc", "stsb", "sst2", "cola") for seed in (1, 2, 3)]
    probes += [f"{root}/{task}/ablation/prune-longer-s0.7/seed{seed}" for task in ("mrpc", "stsb") for seed in (1, 2, 3)]
    assert sorted(cell(c) for c in calls) == sorted([
        f"{root}/sst2/ablation/paper-init/seed1",
        f"{root}/sst2/ablation/mean-pooling-s0.9/seed1",
        f"{root}/mrpc/ablation/mean-pooling-s0.9/seed1",
        *probes,
    ])
    for task, s in (("mrpc", "0.9"), ("stsb", "0.9"), ("cola", "0.9"), ("stsb", "0.7")):
        probe = next(c["args"] for c in calls if cell(c).endswith(f"{task}/ablation/prune-longer-s{s}/seed3"))
        assert probe[probe.index("--task") + 1] == task and probe[probe.index("--sparsity") + 1] == s
        assert "method.prune_fraction=0.8" in probe and f"tag=prune-longer-s{s}" in probe and probe[probe.index("--seed") + 1] == "3"


def test_ablation_tasks_in_the_environment_replace_every_list(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS="paper-init prune-longer-s0.9", ABLATION_TASKS="cola")[:-1]
    assert sorted(cell(c) for c in calls) == [f"{root}/cola/ablation/paper-init/seed1"] + [
        f"{root}/cola/ablation/prune-longer-s0.9/seed{seed}" for seed in (1, 2, 3)]


def test_budget_probes_lift_mrpcs_epoch_cap_for_every_method_they_compare(tmp_path: Path):
    """The 2000-step MRPC probes (docs/results.md): ours, magnitude and feature extraction on one budget."""
    root = tmp_path / "runs"
    names = ("steps-2000-s0.9 steps-2000-features steps-2000-magnitude-s0.9 steps-2000-s0.7 steps-2000-magnitude-s0.7 "
             "steps-2000-random-s0.7 steps-2000-gmp-s0.7 steps-2000-imp-s0.7")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=names)[:-1]
    three_seeds = set(names.split()) - {"steps-2000-s0.9", "steps-2000-magnitude-s0.9"}  # s = 0.7: every method, three seeds
    assert sorted(cell(c) for c in calls) == sorted(f"{root}/mrpc/ablation/{name}/seed{seed}" for name in names.split()
                                                    for seed in ((1, 2, 3) if name in three_seeds else (1,)))
    expected = {"steps-2000-s0.9": (None, "0.9"), "steps-2000-s0.7": (None, "0.7"), "steps-2000-features": ("feature_extraction", "0.5"),
                "steps-2000-magnitude-s0.9": ("magnitude", "0.9"), "steps-2000-magnitude-s0.7": ("magnitude", "0.7"),
                **{f"steps-2000-{method}-s0.7": (method, "0.7") for method in ("random", "gmp", "imp")}}
    for call in calls:
        args, name = call["args"], cell(call).split("/")[-2]
        method, sparsity = expected[name]
        assert args[args.index("--task") + 1] == "mrpc" and args[args.index("--sparsity") + 1] == sparsity
        assert "trainer.epochs=20" in args and f"tag={name}" in args
        assert ([a for a in args if a.startswith("method=")] == [f"method={method}"]) if method else not any(a.startswith("method=") for a in args)


def test_encoder_dropout_probes_run_on_mrpc_at_their_sparsity(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS="encoder-dropout-s0.9 encoder-dropout-s0.7")[:-1]
    assert sorted(cell(c) for c in calls) == sorted(
        [f"{root}/mrpc/ablation/encoder-dropout-s0.9/seed{seed}" for seed in (1, 2, 3)] + [f"{root}/mrpc/ablation/encoder-dropout-s0.7/seed1"])
    for call in calls:
        args = call["args"]
        assert "method.encoder_dropout=true" in args and args[args.index("--task") + 1] == "mrpc"
        assert cell(call).split("/")[-2] == f"encoder-dropout-s{args[args.index('--sparsity') + 1]}"


def test_the_best_cls_recipe_runs_unchanged_on_every_task_and_at_higher_sparsity_where_probed(tmp_path: Path):
    """The [CLS]-head recipe docs/results.md reports for SST-2 was chosen on SST-2's dev set. It also runs
    unchanged at s = 0.5 on the three other tasks (a test of that choice), and at s = 0.7 and s = 0.9 on every
    task: three seeds each (on SST-2 at s = 0.5 also the fresh seeds 4 and 5), the same two overrides, the paper's
    [CLS] head."""
    root = tmp_path / "runs"
    names = "prune-longer-paper-theta-lr prune-longer-paper-theta-lr-s0.7 prune-longer-paper-theta-lr-s0.9"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=names)[:-1]
    tasks = {"prune-longer-paper-theta-lr": ("sst2", "stsb", "cola", "mrpc"),
             "prune-longer-paper-theta-lr-s0.7": ("mrpc", "cola", "sst2", "stsb"), "prune-longer-paper-theta-lr-s0.9": ("cola", "stsb", "sst2", "mrpc")}
    assert sorted(cell(c) for c in calls) == sorted(
        f"{root}/{task}/ablation/{name}/seed{seed}" for name in names.split() for task in tasks[name]
        for seed in ((1, 2, 3, 4, 5) if (name, task) == ("prune-longer-paper-theta-lr", "sst2") else (1, 2, 3)))
    for call in calls:
        args, name = call["args"], cell(call).split("/")[-2]
        assert "method.prune_fraction=0.8" in args and "method.theta_lr=2e-5" in args and f"tag={name}" in args
        assert not any(a.startswith(("head.", "trainer.max_steps", "trainer.epochs", "method=")) for a in args)
        assert args[args.index("--sparsity") + 1] == (name[-3:] if name.endswith(("-s0.7", "-s0.9")) else "0.5")


def test_the_two_epoch_budget_runs_ours_and_fine_tuning_alike_on_the_same_sst2_seeds(tmp_path: Path):
    """The budget probe for SST-2's s = 0.5 target: both sides of the comparison get the same 4000 steps.
    Fine-tuning also runs seeds 4 and 5, the fresh seeds of the recipe it is the reference for."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS="steps-4000 steps-4000-finetune")[:-1]
    assert [cell(c) for c in calls] == [f"{root}/sst2/ablation/{name}/seed{seed}"  # paired by seed
                                        for seed in (1, 2, 3, 4, 5) for name in ("steps-4000", "steps-4000-finetune")
                                        if seed <= 3 or name == "steps-4000-finetune"]
    for call in calls:
        args = call["args"]
        assert "trainer.max_steps=4000" in args and args[args.index("--task") + 1] == "sst2"
        assert not any(a.startswith(("head.", "method.")) for a in args)  # the default recipe and head
        assert [a for a in args if a.startswith("method=")] == (["method=finetune"] if cell(call).split("/")[-2].endswith("finetune") else [])


def test_the_best_cls_recipe_on_the_two_epoch_budget_is_that_recipe_plus_the_budget(tmp_path: Path):
    """The two levers together must be exactly the recipe's cell and the budget's, or the pairing says nothing.
    It runs on seeds 1-5 (4 and 5 fresh, after it was chosen), like its fine-tuning reference."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0",
                     ABLATIONS="prune-longer-paper-theta-lr steps-4000-prune-longer-paper-theta-lr steps-4000-finetune",
                     ABLATION_TASKS="sst2")[:-1]  # the recipe's other tasks are the test above's
    by_cell = {cell(c): c["args"] for c in calls}
    assert sorted(by_cell) == sorted([f"{root}/sst2/ablation/prune-longer-paper-theta-lr/seed{seed}" for seed in (1, 2, 3, 4, 5)]
                                     + [f"{root}/sst2/ablation/{name}/seed{seed}" for seed in (1, 2, 3, 4, 5)
                                        for name in ("steps-4000-prune-longer-paper-theta-lr", "steps-4000-finetune")])

    for seed in (1, 2, 3):
        recipe = overrides(by_cell[f"{root}/sst2/ablation/prune-longer-paper-theta-lr/seed{seed}"])
        combined = overrides(by_cell[f"{root}/sst2/ablation/steps-4000-prune-longer-paper-theta-lr/seed{seed}"])
        assert recipe and combined == recipe | {"trainer.max_steps=4000"}
    for seed in (4, 5):  # the fresh seeds run the same recipe, against fine-tuning on the same budget
        assert overrides(by_cell[f"{root}/sst2/ablation/steps-4000-prune-longer-paper-theta-lr/seed{seed}"]) == combined
        assert overrides(by_cell[f"{root}/sst2/ablation/steps-4000-finetune/seed{seed}"]) == {"method=finetune", "trainer.max_steps=4000"}


def test_stsbs_budgets_cross_with_dev_and_the_held_out_rows_for_ours_and_fine_tuning_alike(tmp_path: Path):
    """STS-B's held-out check (data.holdout=1000) trains for 745 steps in 5 epochs, its dev runs for 900: the dev
    cells get the held-out runs' 745 steps, the held-out cells dev's 900 and twice their own 745 (epochs lifted), both
    sides of the comparison alike, with the default recipe and head, paired by seed. Only the held-out cells carry the
    held-out rows."""
    budgets = {"steps-745": {"trainer.max_steps=745"}, "steps-900": {"trainer.max_steps=900", "trainer.epochs=null"},
               "steps-1490": {"trainer.max_steps=1490", "trainer.epochs=null"}}
    for name, held_out in (("steps-745", ""), ("steps-900", "data.holdout=1000"), ("steps-1490", "data.holdout=1000")):
        root = tmp_path / name / "runs"
        root.parent.mkdir()
        names = (name, f"{name}-finetune")
        calls = run_grid(root.parent, 1, root, GRID="0", ABLATIONS=" ".join(names), OVERRIDES=held_out)[:-1]
        assert [cell(c) for c in calls] == [f"{root}/stsb/ablation/{n}/seed{seed}" for seed in (1, 2, 3) for n in names]
        for call in calls:
            args = call["args"]
            finetune = cell(call).split("/")[-2].endswith("finetune")
            assert overrides(args) == budgets[name] | ({"method=finetune"} if finetune else set())
            assert args[args.index("--task") + 1] == "stsb"
            assert [a for a in args if a.startswith("data.")] == ([held_out] if held_out else [])


def test_the_mean_pooling_recipe_runs_fresh_seeds_against_both_fine_tunings(tmp_path: Path):
    """The mean-pooling recipe's three-seed margin was tested on seeds 4 and 5: the recipe, fine-tuning with the
    same head, and the grid's own fine-tuning (no change but the tag) on those two seeds, which the grid lacks."""
    root = tmp_path / "runs"
    names = ("prune-longer-mean-paper-theta-lr", "mean-pooling-finetune", "finetune-fresh-seeds")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    by_cell = {cell(c): c["args"] for c in calls if cell(c).startswith(f"{root}/sst2/")}  # STS-B's: the test below
    assert sorted(by_cell) == sorted(f"{root}/sst2/ablation/{name}/seed{seed}" for name in names
                                     for seed in ((4, 5) if name == "finetune-fresh-seeds" else (1, 2, 3, 4, 5)))
    for seed in (4, 5):
        assert overrides(by_cell[f"{root}/sst2/ablation/finetune-fresh-seeds/seed{seed}"]) == {"method=finetune"}
        assert overrides(by_cell[f"{root}/sst2/ablation/mean-pooling-finetune/seed{seed}"]) == {"method=finetune", "head.pooling=mean"}
        assert overrides(by_cell[f"{root}/sst2/ablation/prune-longer-mean-paper-theta-lr/seed{seed}"]) == {
            "method.prune_fraction=0.8", "head.pooling=mean", "method.theta_lr=2e-5"}


def test_the_mean_pooling_head_runs_on_stsb_for_ours_and_fine_tuning_on_three_seeds_on_dev_and_held_out_rows(tmp_path: Path):
    """STS-B's mean-pooling probe pairs ours with fine-tuning reading the encoder the same way, seeds 1-3, on dev
    (beside SST-2's cells, unchanged) and, with the held-out rows and ABLATION_TASKS=stsb, on STS-B alone."""
    names = ("mean-pooling", "mean-pooling-finetune")
    expected = {"mean-pooling": {"head.pooling=mean"}, "mean-pooling-finetune": {"method=finetune", "head.pooling=mean"}}
    for held_out in ("", "data.holdout=1000"):
        folder = tmp_path / (held_out or "dev")
        folder.mkdir()
        root = folder / "runs"
        extra = {"OVERRIDES": held_out, "ABLATION_TASKS": "stsb"} if held_out else {}
        calls = run_grid(folder, 1, root, GRID="0", ABLATIONS=" ".join(names), **extra)[:-1]
        by_cell = {cell(c): c["args"] for c in calls}
        sst2 = [] if held_out else [f"{root}/sst2/ablation/mean-pooling/seed1",
                                    *(f"{root}/sst2/ablation/mean-pooling-finetune/seed{seed}" for seed in (1, 2, 3, 4, 5))]
        stsb = [f"{root}/stsb/ablation/{name}/seed{seed}" for name in names for seed in (1, 2, 3)]
        assert sorted(by_cell) == sorted(sst2 + stsb)
        for run in stsb:
            args = by_cell[run]
            assert overrides(args) == expected[run.split("/")[-2]]
            assert args[args.index("--task") + 1] == "stsb"
            assert [a for a in args if a.startswith("data.")] == ([held_out] if held_out else [])


def test_an_edit_to_the_script_while_it_runs_changes_nothing(tmp_path: Path):
    """bash reads a script as it runs it; reproduce.sh is one block, read in full before it starts."""
    script = tmp_path / "reproduce.sh"
    script.write_text(SCRIPT.read_text())
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, script=script, FAKE_EDIT_SCRIPT=str(script))
    assert (tmp_path / "edited").exists() and "added while the grid runs" in script.read_text()
    assert sorted(cell(c) for c in calls[:-1]) == sorted(
        [f"{root}/sst2/{m}/s0.5/seed1" for m in ("adapt_by_pruning", "magnitude", "random")]
        + [f"{root}/sst2/finetune/s0.0/seed1", f"{root}/sst2/feature_extraction/s0.0/seed1", f"{root}/sst2/ablation/paper-init/seed1"])
    assert calls[-1]["args"][0] == "report"


def test_alphas_schedules_run_on_three_seeds_each_with_its_one_change_and_with_the_cls_recipe(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS="theta-lr-warmup theta-lr-decay prune-longer-paper-theta-lr prune-longer-paper-theta-lr-decay")[:-1]
    by_cell = {cell(c): c["args"] for c in calls}
    changes = {"theta-lr-warmup": "method.warmup_fraction=0.1", "theta-lr-decay": "method.theta_lr_decay=true"}
    tasks = {"theta-lr-warmup": ("sst2",), "theta-lr-decay": ("sst2", "cola")}
    for name, change in changes.items():
        for task in tasks[name]:
            for seed in (1, 2, 3):
                args = by_cell[f"{root}/{task}/ablation/{name}/seed{seed}"]
                assert args[args.index("--sparsity") + 1] == "0.5" and change in args and f"tag={name}" in args
    assert f"{root}/cola/ablation/theta-lr-warmup/seed1" not in by_cell
    for seed in (1, 2, 3):  # the [CLS] recipe plus the decay, exactly
        recipe = overrides(by_cell[f"{root}/sst2/ablation/prune-longer-paper-theta-lr/seed{seed}"])
        assert overrides(by_cell[f"{root}/sst2/ablation/prune-longer-paper-theta-lr-decay/seed{seed}"]) == recipe | {changes["theta-lr-decay"]}


def test_the_unseen_vocabulary_prior_runs_where_probed_and_the_low_sparsity_probe_on_sst2(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0",
                     ABLATIONS="unseen-tokens-first sparsity-0.2 unseen-tokens-first-s0.9 prune-longer-s0.9 prune-longer-unseen-tokens-first-s0.9")[:-1]
    lane = {f"trainer.num_threads={lane_threads(2)}"}  # how the lanes share the cores, not the recipe
    by_cell = {cell(c): c["args"] for c in calls}
    for seed in (1, 2, 3):
        for task in ("sst2", "cola"):
            args = by_cell[f"{root}/{task}/ablation/unseen-tokens-first/seed{seed}"]
            assert args[args.index("--sparsity") + 1] == "0.5" and overrides(args) - lane == {"method.unseen_tokens_first=true"}
        for task in ("mrpc", "stsb", "sst2"):  # at s = 0.9: where the default misses a target, and SST-2
            args = by_cell[f"{root}/{task}/ablation/unseen-tokens-first-s0.9/seed{seed}"]
            assert args[args.index("--sparsity") + 1] == "0.9" and overrides(args) - lane == {"method.unseen_tokens_first=true"}
        args = by_cell[f"{root}/sst2/ablation/sparsity-0.2/seed{seed}"]
        assert args[args.index("--sparsity") + 1] == "0.2" and not overrides(args) - lane and "tag=sparsity-0.2" in args
        # on STS-B at s = 0.9, the prior on top of the longer ramp, exactly
        longer = by_cell[f"{root}/stsb/ablation/prune-longer-s0.9/seed{seed}"]
        both = by_cell[f"{root}/stsb/ablation/prune-longer-unseen-tokens-first-s0.9/seed{seed}"]
        assert both[both.index("--sparsity") + 1] == "0.9"
        assert overrides(both) == overrides(longer) | {"method.unseen_tokens_first=true"}
    assert {c.split("/ablation/")[1].split("/")[0] for c in by_cell if "/stsb/" in c} >= {"prune-longer-unseen-tokens-first-s0.9"}
    assert not any("prune-longer-unseen" in c for c in by_cell if "/stsb/" not in c)


def test_thetas_beta1_probe_runs_three_seeds_and_its_larger_alpha_screen_one(tmp_path: Path):
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS="theta-beta1-0.99 theta-beta1-0.99-theta-lr-2e-4")[:-1]
    lane = {f"trainer.num_threads={lane_threads(2)}"}
    by_cell = {cell(c): c["args"] for c in calls}
    assert sorted(by_cell) == sorted([f"{root}/sst2/ablation/theta-beta1-0.99/seed{s}" for s in (1, 2, 3)]
                                     + [f"{root}/sst2/ablation/theta-beta1-0.99-theta-lr-2e-4/seed1"])
    for name, change in (("theta-beta1-0.99", {"method.theta_beta1=0.99"}),
                         ("theta-beta1-0.99-theta-lr-2e-4", {"method.theta_beta1=0.99", "method.theta_lr=2e-4"})):
        args = by_cell[f"{root}/sst2/ablation/{name}/seed1"]
        assert args[args.index("--sparsity") + 1] == "0.5" and overrides(args) - lane == change and f"tag={name}" in args


def test_switching_off_recovery_runs_three_seeds_on_both_table_4_tasks_at_both_sparsities(tmp_path: Path):
    """The paper's Table 4 on the tasks we have: SST-2 and STS-B, s = 0.5 and 0.9, three seeds each."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS="no-recovery no-recovery-s0.9")[:-1]
    lane = {f"trainer.num_threads={lane_threads(2)}"}
    by_cell = {cell(c): c["args"] for c in calls}
    expected = {f"{root}/{task}/ablation/{name}/seed{seed}": s for task in ("sst2", "stsb") for seed in (1, 2, 3)
                for name, s in (("no-recovery", "0.5"), ("no-recovery-s0.9", "0.9"))}
    assert sorted(by_cell) == sorted(expected)
    for path, sparsity in expected.items():
        args = by_cell[path]
        assert args[args.index("--sparsity") + 1] == sparsity and overrides(args) - lane == {"method.no_recovery=true"}



def test_the_batch_of_16_gives_ours_and_fine_tuning_the_default_examples_in_twice_the_updates(tmp_path: Path):
    """steps-4000 doubled both the updates and the examples; these cells double only the updates, on
    both sides of SST-2's comparison and for the [CLS] recipe (that recipe plus this budget), paired by seed."""
    root = tmp_path / "runs"
    names = ("batch-16", "batch-16-finetune", "batch-16-prune-longer-paper-theta-lr")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    assert [cell(c) for c in calls] == [f"{root}/sst2/ablation/{name}/seed{seed}" for seed in (1, 2, 3) for name in names]
    budget = {"trainer.batch_size=16", "trainer.max_steps=4000"}
    change = {"batch-16": set(), "batch-16-finetune": {"method=finetune"},
              "batch-16-prune-longer-paper-theta-lr": {"method.prune_fraction=0.8", "method.theta_lr=2e-5"}}
    for call in calls:
        args = call["args"]
        assert overrides(args) == budget | change[cell(call).split("/")[-2]] and args[args.index("--task") + 1] == "sst2"
    default = OmegaConf.load(SCRIPT.parents[1] / "configs" / "trainer" / "cpu.yaml")
    assert default.batch_size * default.max_steps == 16 * 4000  # the default budget's examples


def test_the_hold_at_s_runs_the_default_recipe_with_theta_learning_to_90_percent_of_the_budget(tmp_path: Path):
    """One change to the default recipe, alone and with the paper's alpha, on SST-2's seeds 1-3
    (paired with the default's grid runs) and the fresh seeds 4 and 5 fine-tuning has; alone also
    on STS-B, and with the paper's alpha on the other three tasks, seeds 1-3, to see whether it
    carries over."""
    root = tmp_path / "runs"
    names = ("hold-at-s", "hold-at-s-paper-theta-lr")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    expected = [f"{root}/sst2/ablation/hold-at-s/seed{seed}" for seed in (1, 2, 3, 4, 5)]
    expected += [f"{root}/stsb/ablation/hold-at-s/seed{seed}" for seed in (1, 2, 3)]
    expected += [f"{root}/sst2/ablation/hold-at-s-paper-theta-lr/seed{seed}" for seed in (1, 2, 3, 4, 5)]
    expected += [f"{root}/{task}/ablation/hold-at-s-paper-theta-lr/seed{seed}" for task in ("cola", "mrpc", "stsb") for seed in (1, 2, 3)]
    assert sorted(cell(c) for c in calls) == sorted(expected)
    change = {"hold-at-s": set(), "hold-at-s-paper-theta-lr": {"method.theta_lr=2e-5"}}
    for call in calls:
        args = call["args"]
        assert overrides(args) == {"method.hold_fraction=0.4"} | change[cell(call).split("/")[-2]]
        assert args[args.index("--task") + 1] == cell(call).split("/")[-4] and args[args.index("--sparsity") + 1] == "0.5"
    default = OmegaConf.load(SCRIPT.parents[1] / "configs" / "method" / "adapt_by_pruning.yaml")
    assert default.prune_fraction + 0.4 == pytest.approx(0.9)


def test_the_hold_at_s_runs_on_mrpc_at_the_higher_sparsities_with_only_the_sparsity_changed(tmp_path: Path):
    """MRPC at s = 0.7 and 0.9, the cells the default misses, seeds 1-3 (paired with the grid's
    runs), and STS-B at s = 0.9 beside the hold with the paper's alpha there: the s = 0.5 cell's
    overrides exactly, plus the sparsity."""
    root = tmp_path / "runs"
    names = ("hold-at-s-s0.7", "hold-at-s-s0.9")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    expected = [f"{root}/mrpc/ablation/{name}/seed{seed}" for seed in (1, 2, 3) for name in names]
    assert [cell(c) for c in calls] == expected + [f"{root}/stsb/ablation/{names[1]}/seed{seed}" for seed in (1, 2, 3)]
    for call in calls:
        args = call["args"]
        assert overrides(args) == {"method.hold_fraction=0.4"} and args[args.index("--task") + 1] == cell(call).split("/")[-4]
        assert args[args.index("--sparsity") + 1] == cell(call).split("/")[-2].removeprefix("hold-at-s-s")


def test_the_hold_with_the_paper_alpha_runs_at_the_higher_sparsities_with_only_the_sparsity_changed(tmp_path: Path):
    """The recipe that meets SST-2's s = 0.5 target, at s = 0.9 where the [CLS] recipe stopped paying
    (STS-B, CoLA) and where every recipe misses (MRPC, also at s = 0.7), seeds 1-3 (paired with the
    grid's runs), and on MRPC at s = 0.7 also the fresh seeds 4 and 5: the s = 0.5 cell's overrides
    exactly, plus the sparsity."""
    root = tmp_path / "runs"
    names = ("hold-at-s-paper-theta-lr-s0.9", "hold-at-s-paper-theta-lr-s0.7")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    expected = [f"{root}/mrpc/ablation/{name}/seed{seed}" for seed in (1, 2, 3) for name in names]
    expected += [f"{root}/mrpc/ablation/{names[1]}/seed{seed}" for seed in (4, 5)]
    expected += [f"{root}/{task}/ablation/{names[0]}/seed{seed}" for task in ("stsb", "cola") for seed in (1, 2, 3)]
    assert [cell(c) for c in calls] == expected
    for call in calls:
        args = call["args"]
        assert overrides(args) == {"method.hold_fraction=0.4", "method.theta_lr=2e-5"}
        assert args[args.index("--task") + 1] == cell(call).split("/")[-4]
        assert args[args.index("--sparsity") + 1] == cell(call).split("/")[-2].removeprefix("hold-at-s-paper-theta-lr-s")


def test_the_hold_with_the_paper_alpha_while_held_only_runs_where_a_new_default_must_hold(tmp_path: Path):
    """The hold with the paper's alpha in the hold alone (the ramp at the default alpha): at s = 0.5
    on SST-2, where the paper's alpha with the hold met the target, and at s = 0.9 on STS-B, where
    it lost against the default; seeds 1-3, paired with the hold's and the grid's runs, and on
    SST-2 also seeds 4 and 5, which fine-tuning has. At s = 0.5 also on STS-B, whose target the
    default meets: a recipe that would replace it must keep that. Then MRPC at every s (s = 0.7
    only there) and CoLA at s = 0.5 and 0.9, the orderings a new default must keep; then (fifty-sixth
    sitting) the cells left, so that it runs on every task at every s. Task by task, every seed-1
    run before any seed 2, so the most informative runs come first."""
    root = tmp_path / "runs"
    names = ("hold-at-s-then-paper-theta-lr", "hold-at-s-then-paper-theta-lr-s0.9", "hold-at-s-then-paper-theta-lr-s0.7")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    expected = [f"{root}/{task}/ablation/{name}/seed{seed}" for task in ("sst2", "stsb", "mrpc", "cola")
                for seed in (1, 2, 3, 4, 5) for name in names if seed <= 3 or (task, name) == ("sst2", names[0])]
    assert [cell(c) for c in calls] == expected
    sparsity_of = {names[0]: "0.5", names[1]: "0.9", names[2]: "0.7"}
    for call in calls:
        args, name = call["args"], cell(call).split("/")[-2]
        assert overrides(args) == {"method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"}
        assert args[args.index("--task") + 1] == cell(call).split("/")[-4]
        assert args[args.index("--sparsity") + 1] == sparsity_of[name]


def test_the_nearest_baselines_of_mrpc_at_s07_run_on_the_fresh_seeds_with_the_grid_recipe(tmp_path: Path):
    """Magnitude and random at s = 0.7 on MRPC's seeds 4 and 5, the grid's own recipe and nothing else
    (like finetune-fresh-seeds), so that with the grid's seeds 1-3 they make the five-seed reference."""
    root = tmp_path / "runs"
    names = ("magnitude-s0.7-fresh-seeds", "random-s0.7-fresh-seeds")
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    assert [cell(c) for c in calls] == [f"{root}/mrpc/ablation/{name}/seed{seed}" for seed in (4, 5) for name in names]
    for call in calls:
        args = call["args"]
        method = cell(call).split("/")[-2].removesuffix("-s0.7-fresh-seeds")
        assert overrides(args) == {f"method={method}"} and args[args.index("--task") + 1] == "mrpc"
        assert args[args.index("--sparsity") + 1] == "0.7"



def test_transfer_cells_read_the_mask_of_their_seed_under_the_runs_root_after_every_other_cell(tmp_path: Path):
    """MRPC scored with another task's mask of the same seed: listed first, the transfer cells still
    run last, in two lanes, once the STS-B runs they read have finished."""
    root = tmp_path / "runs"
    names = ("transfer-stsb-prune-longer-s0.9", "transfer-cola-hold-at-s-then-paper-theta-lr-s0.9", "prune-longer-s0.9")
    calls = run_grid(tmp_path, 2, root, GRID="0", ABLATIONS=" ".join(names))[:-1]
    reading = [c for c in calls if cell(c).split("/")[-2].startswith("transfer-")]
    assert sorted(cell(c) for c in reading) == sorted(f"{root}/mrpc/ablation/{name}/seed{seed}" for name in names[:2] for seed in (1, 2, 3))
    assert calls[-len(reading):] == reading, "every cell that reads another run comes after the rest"
    sources = {names[0]: "stsb/ablation/prune-longer-s0.9", names[1]: "cola/ablation/hold-at-s-then-paper-theta-lr-s0.9"}
    for call in reading:
        args, name, seed = call["args"], cell(call).split("/")[-2], cell(call)[-1]
        assert overrides(args) - {f"trainer.num_threads={lane_threads(2)}"} == {f"method.mask_run={root}/{sources[name]}/seed{seed}"} and args[args.index("--method") + 1] == "transfer"
        assert args[args.index("--sparsity") + 1] == "0.9" and args[args.index("--seed") + 1] == seed
    stsb = [c for c in reading if "transfer-stsb" in cell(c)]
    assert all(c["read_finished"] for c in stsb), "an STS-B mask was read before its run finished"
    assert not any(c["read_finished"] for c in reading if c not in stsb), "no CoLA run was made here, so nothing to read"


def test_a_moved_records_transfer_runs_are_their_cells_and_another_cells_mask_is_kept(tmp_path: Path):
    """The record is made under outputs/reproduce and published under docs/results/runs: a transfer run there
    names its mask under the old root, and is still the cell that reads that mask's cell here. A run that read
    another seed's mask is not."""
    root = tmp_path / "published"
    name, source = "transfer-stsb-prune-longer-s0.9", "stsb/ablation/prune-longer-s0.9"
    typed = ["task=mrpc", "method=transfer", "sparsity=0.9", f"tag={name}", "trainer.progress=false"]
    for seed in (1, 2):
        recorded_run(root / source / f"seed{seed}", ["task=stsb", "sparsity=0.9", f"seed={seed}", "tag=prune-longer-s0.9",
                                                     "method=adapt_by_pruning_stop_at_s", "method.prune_fraction=0.8"])
    moved = recorded_run(root / "mrpc" / "ablation" / name / "seed1", [*typed, "seed=1", f"method.mask_run=outputs/reproduce/{source}/seed1"])
    other = recorded_run(root / "mrpc" / "ablation" / name / "seed2", [*typed, "seed=2", f"method.mask_run=outputs/reproduce/{source}/seed1"])
    done, calls = run_script(tmp_path, 1, root, GRID="0", ABLATIONS=name, ABLATION_SEEDS="1 2")
    assert done.returncode == 1, done.stdout + done.stderr
    kept = [line for line in done.stderr.splitlines() if " KEPT: " in line]
    assert len(kept) == 1 and str(other) in kept[0] and str(moved) not in kept[0], done.stderr
    assert f"only there: method.mask_run=<runs root>/{source}/seed1; only in this call: method.mask_run=<runs root>/{source}/seed2" in kept[0]
    assert [c["args"][0] for c in calls] == ["report"]

def test_bf16_runs_the_default_recipe_in_bf16_on_three_seeds_of_every_task(tmp_path: Path):
    """The one change is the precision, so each run pairs with the grid's fp32 run of its seed."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS="bf16")[:-1]
    assert sorted(cell(c) for c in calls) == sorted(f"{root}/{task}/ablation/bf16/seed{seed}" for task in ("sst2", "stsb", "mrpc", "cola") for seed in (1, 2, 3))
    for call in calls:
        args = call["args"]
        assert overrides(args) == {"trainer.precision=bf16"} and args[args.index("--sparsity") + 1] == "0.5"


# A run that takes long enough to be stopped: on SIGTERM it records the stop and ends killed by
# that signal, as prune-cli does after saving its checkpoint; it notes whether Ctrl-C reaches it.
STOPPABLE_CLI = r'''
import json, os, signal, sys, time
from pathlib import Path
log = Path(os.environ["FAKE_LOG"])
running = log.parent / "running"
running.mkdir(exist_ok=True)
me = running / str(os.getpid())
args = sys.argv[1:]

def record(entry):
    with open(log, "a") as f:
        f.write(json.dumps(entry) + "\n")

def stop(number, frame):
    record({"stopped": args, "signal": number})
    me.unlink()
    if os.environ.get("FAKE_FINISH_ON_STOP"):
        sys.exit(0)  # a stop after the last step: prune-cli finishes the run
    signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)

signal.signal(signal.SIGTERM, stop)
if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
    signal.signal(signal.SIGINT, stop)
me.touch()
record({"args": args})
if args[0] == "adapt":
    time.sleep(60)
me.unlink()
'''


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_every_running_lane_with_sigterm_and_starts_nothing_more(tmp_path: Path, jobs: int):
    """A terminal's Ctrl-C (SIGINT to the whole process group) reaches prune-cli as one SIGTERM in
    every lane (a lane's shell gets the SIGINT and the launcher's SIGTERM, and passes on one: a
    second would make prune-cli stop at once, without saving at its stop step), the script waits
    for them, then stops: no new cell, no report, no run left behind. Whether both signals reach a
    lane before it passes one on is a race, so a double SIGTERM fails this test on some runs only."""
    fake = tmp_path / "stoppable_cli.py"
    fake.write_text(STOPPABLE_CLI)
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PRUNE_CLI": f"{sys.executable} {fake}", "PYTHON": sys.executable, "FAKE_LOG": str(log), "JOBS": str(jobs),
           "TASKS": "sst2", "SEEDS": "1", "SPARSITIES": "0.5", "METHODS": "adapt_by_pruning magnitude random", "ABLATIONS": ""}
    script = subprocess.Popen(["bash", str(SCRIPT), str(tmp_path / "runs"), str(tmp_path / "report")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    running = tmp_path / "running"
    deadline = time.monotonic() + 60
    while (not running.is_dir() or len(list(running.iterdir())) < jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # every lane's run is in its sleep, its handlers installed
    os.killpg(script.pid, signal.SIGINT)
    out, err = script.communicate(timeout=30)
    assert script.returncode == 130, out + err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    started = [c["args"] for c in calls if "args" in c]
    stopped = [c for c in calls if "stopped" in c]
    assert len(started) == jobs and all(a[0] == "adapt" for a in started), calls  # no further cell, no report
    assert sorted(map(str, (c["stopped"] for c in stopped))) == sorted(map(str, started))
    assert {c["signal"] for c in stopped} == {signal.SIGTERM}, "a lane's run should get SIGTERM, not Ctrl-C"
    assert not list(running.iterdir()), "a run outlived the script"
    assert err.count("STOPPED: ") == jobs and "run the same command again" in err, err


def test_ctrl_c_as_a_run_finishes_still_stops_the_grid(tmp_path: Path):
    """prune-cli finishes a run that is asked to stop after its last step (exit 0); the script must
    stop all the same, not start the next cell as if no Ctrl-C had come."""
    fake = tmp_path / "stoppable_cli.py"
    fake.write_text(STOPPABLE_CLI)
    log = tmp_path / "calls.jsonl"
    env = {**os.environ, "PRUNE_CLI": f"{sys.executable} {fake}", "PYTHON": sys.executable, "FAKE_LOG": str(log), "FAKE_FINISH_ON_STOP": "1",
           "JOBS": "1", "TASKS": "sst2", "SEEDS": "1", "SPARSITIES": "0.5", "METHODS": "adapt_by_pruning", "ABLATIONS": ""}
    script = subprocess.Popen(["bash", str(SCRIPT), str(tmp_path / "runs"), str(tmp_path / "report")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    running = tmp_path / "running"
    deadline = time.monotonic() + 60
    while (not running.is_dir() or not list(running.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(script.pid, signal.SIGINT)
    try:
        out, err = script.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # the grid went on to its next cell: leave no script behind
        os.killpg(script.pid, signal.SIGKILL)
        raise
    assert script.returncode == 130, out + err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["args"][:5] for c in calls if "args" in c] == [["adapt", "--task", "sst2", "--method", "finetune"]], calls
    assert len([c for c in calls if "stopped" in c]) == 1 and "run the same command again" in err, err


def test_overrides_reach_every_new_run_and_references_can_be_narrowed(tmp_path: Path):
    """The held-out check (docs/results.md) is this script with OVERRIDES and REFERENCES: every run it
    starts must carry the overrides, and the references not listed must not run."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, OVERRIDES="data.holdout=872 data.holdout_seed=3", REFERENCES="finetune",
                     METHODS="adapt_by_pruning")[:-1]
    assert sorted(cell(c) for c in calls) == sorted([f"{root}/sst2/finetune/s0.0/seed1", f"{root}/sst2/adapt_by_pruning/s0.5/seed1",
                                                     f"{root}/sst2/ablation/paper-init/seed1"])
    assert all({"data.holdout=872", "data.holdout_seed=3"} <= set(c["args"]) for c in calls)
    plain = tmp_path / "plain"
    plain.mkdir()
    none = run_grid(plain, 1, plain / "runs", METHODS="adapt_by_pruning", REFERENCES="")[:-1]
    assert [cell(c) for c in none] == [f"{plain}/runs/sst2/adapt_by_pruning/s0.5/seed1", f"{plain}/runs/sst2/ablation/paper-init/seed1"]
    assert not any(a.startswith("data.") for c in none for a in c["args"])


def as_overrides(args: list[str]) -> list[str]:
    """An adapt call's words as prune-cli turns them into overrides: its options through
    `config.options_to_overrides`, then the other words as typed."""
    from prune_cli.config import options_to_overrides

    options: dict[str, str] = {}
    typed, words = [], iter(args)
    for word in words:
        if word in ("--task", "--method", "--sparsity", "--seed"):
            options[word[2:]] = next(words)
        else:
            typed.append(word)
    return options_to_overrides(options.get("task"), options.get("sparsity"), options.get("method"), None, options.get("seed")) + typed


def test_every_default_ablation_cell_sets_each_key_once_and_passes_the_clis_checks(tmp_path: Path):
    """Each cell's command (its options, its spec, the lane's and the script's own overrides) goes through
    prune-cli's up-front check: a key given twice there is refused, so a spec that repeated the script's
    `--method`, `--sparsity` or `trainer.progress`, or another key twice, would fail its cell."""
    from prune_cli.config import check_overrides

    [default_list] = re.findall(r"^ablations=\$\{ABLATIONS-([^}]*)\}", SCRIPT.read_text(), flags=re.MULTILINE)
    calls = run_grid(tmp_path, 2, tmp_path / "runs", GRID="0", ABLATIONS=default_list, ABLATION_SEEDS="1", FAKE_SLEEP="0")[:-1]
    assert {cell(c).split("/ablation/")[1].split("/")[0] for c in calls} == set(default_list.split())
    for call in calls:
        check_overrides(as_overrides(call["args"][1:]))


def recorded_run(run_dir: Path, overrides: list[str], finished: bool = True) -> Path:
    """A run folder as prune-cli leaves it: Hydra's record of the overrides, and metrics.json once finished
    (a stopped run has its stored config instead)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
    if finished:
        (run_dir / "metrics.json").write_text("{}")
    return run_dir


def test_a_finished_run_of_the_same_overrides_is_skipped_whatever_its_threads_and_display(tmp_path: Path):
    root = tmp_path / "runs"
    grid = recorded_run(root / "sst2" / "adapt_by_pruning" / "s0.5" / "seed1",
                        ["task=sst2", "method=adapt_by_pruning", "sparsity=0.5", "seed=1", "data.holdout=872", "trainer.num_threads=1",
                         "trainer.progress=false"])
    ablation = recorded_run(root / "sst2" / "ablation" / "paper-init" / "seed1",
                            ["task=sst2", "seed=1", "tag=paper-init", "sparsity=0.5", "method.init=normal", "data.holdout=872"])
    done, calls = run_script(tmp_path, 1, root, METHODS="adapt_by_pruning", REFERENCES="", OVERRIDES="data.holdout=872")
    assert done.returncode == 0 and "KEPT" not in done.stderr, done.stderr
    assert [c["args"][0] for c in calls] == ["report"], calls
    assert (grid / "metrics.json").exists() and (ablation / "metrics.json").exists()


@pytest.mark.parametrize("finished", [True, False])
def test_a_run_of_other_overrides_is_kept_named_and_not_taken_for_this_calls_cell(tmp_path: Path, finished: bool):
    """A root of dev runs, run again with the held-out rows: the old runs must neither answer for the new
    recipe silently nor be resumed under it; the other cells run, the report is made, and the status says so."""
    root = tmp_path / "runs"
    old = recorded_run(root / "sst2" / "adapt_by_pruning" / "s0.5" / "seed1",
                       ["task=sst2", "method=adapt_by_pruning", "sparsity=0.5", "seed=1", "trainer.progress=false"], finished)
    done, calls = run_script(tmp_path, 1, root, METHODS="adapt_by_pruning", REFERENCES="", OVERRIDES="data.holdout=872")
    assert done.returncode == 1, done.stdout + done.stderr
    kept = [line for line in done.stderr.splitlines() if " KEPT: " in line]
    assert len(kept) == 1 and str(old) in kept[0] and "only in this call: data.holdout=872" in kept[0], done.stderr
    assert "1 cell(s) kept from runs made with other overrides" in done.stderr
    assert [cell(c) for c in calls if c["args"][0] == "adapt"] == [f"{root}/sst2/ablation/paper-init/seed1"]
    assert calls[-1]["args"][0] == "report"
    assert (old / "metrics.json").exists() == finished  # untouched


def test_the_split_alpha_on_mrpcs_2000_step_budget_is_that_recipe_plus_that_budget_on_three_seeds(tmp_path: Path):
    """The one target the default meets only on the 2000-step budget (MRPC at s = 0.7): the candidate for a
    new default runs there with exactly its own overrides and the budget's, against the same budget's baselines."""
    root = tmp_path / "runs"
    name = "steps-2000-hold-at-s-then-paper-theta-lr-s0.7"
    calls = run_grid(tmp_path, 1, root, GRID="0", ABLATIONS=f"{name} steps-2000-s0.7 hold-at-s-then-paper-theta-lr-s0.7")[:-1]
    by_cell = {cell(c): c["args"] for c in calls}
    for seed in (1, 2, 3):
        args = by_cell[f"{root}/mrpc/ablation/{name}/seed{seed}"]
        budget = overrides(by_cell[f"{root}/mrpc/ablation/steps-2000-s0.7/seed{seed}"])
        recipe = overrides(by_cell[f"{root}/mrpc/ablation/hold-at-s-then-paper-theta-lr-s0.7/seed{seed}"])
        assert overrides(args) == budget | recipe == {"trainer.epochs=20", "method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"}
        assert args[args.index("--sparsity") + 1] == "0.7" and f"tag={name}" in args
    assert not any(f"/{name}/" in c and "/mrpc/" not in c for c in by_cell)


def test_the_record_is_remade_with_the_default_it_was_made_with(tmp_path: Path):
    """The record was made before 0.2.0 changed adapt_by_pruning's default (prune_cli/recipes.py): its grid
    cells and every ablation that names no method run adapt_by_pruning_stop_at_s, in the same folders."""
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, ABLATIONS="paper-init mean-pooling-finetune hold-at-s-then-paper-theta-lr")[:-1]
    by_cell = {cell(c): c["args"] for c in calls}

    def method(args: list[str]) -> str:
        return args[args.index("--method") + 1] if "--method" in args else next(a.split("=", 1)[1] for a in args if a.startswith("method="))

    assert method(by_cell[f"{root}/sst2/adapt_by_pruning/s0.5/seed1"]) == "adapt_by_pruning_stop_at_s"
    assert method(by_cell[f"{root}/sst2/magnitude/s0.5/seed1"]) == "magnitude"
    assert method(by_cell[f"{root}/sst2/ablation/paper-init/seed1"]) == "adapt_by_pruning_stop_at_s"
    assert method(by_cell[f"{root}/sst2/ablation/mean-pooling-finetune/seed1"]) == "finetune"
    split = by_cell[f"{root}/sst2/ablation/hold-at-s-then-paper-theta-lr/seed1"]  # today's default, typed on the old one
    assert method(split) == "adapt_by_pruning_stop_at_s" and {"method.hold_fraction=0.4", "method.hold_theta_lr=2e-5"} <= set(split)


def test_a_grid_run_of_todays_default_is_not_taken_for_the_recorded_defaults_cell(tmp_path: Path):
    """Same folder, same typed overrides, other recipe: a run made since 0.2.0 with `method=adapt_by_pruning`
    holds at s, so it is kept and named, while one made before (no hold keys, an older prune-cli) is the cell."""
    root = tmp_path / "runs"
    typed = ["task=sst2", "method=adapt_by_pruning", "sparsity=0.5", "seed=1", "trainer.progress=false"]
    today = recorded_run(root / "sst2" / "adapt_by_pruning" / "s0.5" / "seed1", typed)
    (today / ".hydra" / "config.yaml").write_text("method:\n  name: adapt_by_pruning\n  hold_fraction: 0.4\n  hold_theta_lr: 2.0e-05\n")
    (today / "metrics.json").write_text(json.dumps({"versions": {"prune_cli": "0.2.0"}}))
    before = recorded_run(root / "sst2" / "adapt_by_pruning" / "s0.9" / "seed1", [*typed[:2], "sparsity=0.9", *typed[3:]])
    (before / "metrics.json").write_text(json.dumps({"versions": {"prune_cli": "0.1.0"}}))
    done, calls = run_script(tmp_path, 1, root, METHODS="adapt_by_pruning", REFERENCES="", SPARSITIES="0.5 0.9", ABLATIONS="")
    assert done.returncode == 1, done.stdout + done.stderr
    kept = [line for line in done.stderr.splitlines() if " KEPT: " in line]
    assert len(kept) == 1 and str(today) in kept[0], done.stderr
    assert "only there: method=adapt_by_pruning; only in this call: method=adapt_by_pruning_stop_at_s" in kept[0]
    assert [c["args"][0] for c in calls] == ["report"]


def test_the_script_refuses_to_compare_recipes_without_a_python_that_has_prune_cli(tmp_path: Path):
    done, calls = run_script(tmp_path, 1, tmp_path / "runs", PYTHON=str(tmp_path / "no-python"))
    assert done.returncode == 2 and "cannot import prune_cli" in done.stderr and "Traceback" not in done.stderr
    assert calls == []


@pytest.mark.parametrize("entry_point", ["shebang", "sh_exec_line", "env_shebang"])
def test_without_python_set_the_script_uses_the_python_prune_cli_runs_on(tmp_path: Path, entry_point: str):
    """A venv's bin/ on PATH but not activated (or a pipx install): python3 there has no prune_cli,
    while the prune-cli entry point names one that does; the grid runs on that one. pip names it on
    the #! line, or, where its path holds a space or is too long for one, on an exec line after
    `#!/bin/sh` (distlib's launcher); an entry point written by hand or by another installer may name
    it as `#!/usr/bin/env <python>`, the one of that name on PATH, after env's options and settings."""
    bin_dir = tmp_path / "my env" / "bin"
    bin_dir.mkdir(parents=True)
    if entry_point == "shebang":
        write_entry_point(bin_dir)
    elif entry_point == "env_shebang":
        python = write_executable(bin_dir / "python-of-the-cli", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        write_executable(bin_dir / "prune-cli", f"#!/usr/bin/env -S -u PYTHONSTARTUP LC_ALL=C {python.name} -X utf8\n{FAKE_CLI}")
    else:
        # an interpreter whose path holds a space, as pip then writes it
        python = write_executable(bin_dir / "python", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        write_executable(bin_dir / "prune-cli", f"""#!/bin/sh\n'''exec' "{python}" "$0" "$@"\n' '''\n{FAKE_CLI}""")
    write_executable(bin_dir / "python3", "#!/bin/sh\nexit 1\n")  # a python3 without prune_cli
    # empty PYTHON and PRUNE_CLI read as unset: the script then runs `prune-cli`, found on PATH
    unset = dict(PYTHON="", PRUNE_CLI="", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", METHODS="adapt_by_pruning",
                 REFERENCES="", ABLATIONS="")
    root = tmp_path / "runs"
    calls = run_grid(tmp_path, 1, root, **unset)
    assert [c["args"][0] for c in calls] == ["adapt", "report"]
    # a second call finds the finished cell and compares its recipe, which needs prune_cli
    done, calls = run_script(tmp_path, 1, root, **unset)
    assert done.returncode == 0 and " KEPT: " not in done.stderr, done.stdout + done.stderr
    assert [c["args"][0] for c in calls] == ["adapt", "report", "report"]


# a prune_cli.recipes that reads every finished run as another recipe than the call's
OTHER_RECIPES = """\
import sys
overrides = [line.rstrip("\\n") for line in sys.stdin if line.strip()]
print("\\n".join(overrides + (["method=another_install"] if sys.argv[1:] else [])))
"""


def another_install(folder: Path) -> Path:
    """A prune_cli package in `folder` whose recipe reader takes every finished run for another recipe."""
    (folder / "prune_cli").mkdir(parents=True)
    (folder / "prune_cli" / "__init__.py").write_text("")
    (folder / "prune_cli" / "recipes.py").write_text(OTHER_RECIPES)
    return folder


def write_executable(path: Path, text: str) -> Path:
    """A script at `path` that PATH lookups and #! lines can run."""
    path.write_text(text)
    path.chmod(0o755)
    return path


def write_entry_point(bin_dir: Path) -> None:
    """A `prune-cli` entry point in `bin_dir` as pip writes one: the stand-in CLI under a #! line naming this Python."""
    bin_dir.mkdir(exist_ok=True)
    write_executable(bin_dir / "prune-cli", f"#!{sys.executable}\n{FAKE_CLI}")


def assert_finished_cell_is_done(tmp_path: Path, cwd: Path, **env: str) -> None:
    """With PYTHON unset, a second call finds the finished cell (made before 0.2.0) and reads it as its
    own: no KEPT line, nothing run again."""
    root = tmp_path / "runs"
    recorded_run(root / "sst2" / "adapt_by_pruning" / "s0.5" / "seed1",
                 ["task=sst2", "method=adapt_by_pruning", "sparsity=0.5", "seed=1", "trainer.progress=false"])
    done, calls = run_script(tmp_path, 1, root, cwd=cwd, PYTHON="", METHODS="adapt_by_pruning", REFERENCES="", ABLATIONS="", **env)
    assert done.returncode == 0 and " KEPT: " not in done.stderr, done.stdout + done.stderr
    assert [c["args"][0] for c in calls] == ["report"]


@pytest.mark.parametrize("cli_form", ["entry_point", "python_first"])
def test_the_prune_cli_that_makes_the_runs_reads_them_before_python3(tmp_path: Path, cli_form: str):
    """python3 on PATH imports another install of prune_cli (a dev checkout, an older release),
    while the grid runs on the prune-cli command's own Python: the recipe of a finished run is
    read by the install that made it, so a second call keeps the cell as done instead of naming
    it KEPT. The command's Python is its entry point's #! interpreter, or the command itself
    where PRUNE_CLI starts with a Python."""
    other = another_install(tmp_path / "other-install")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python3 = write_executable(bin_dir / "python3", f'#!/bin/sh\nPYTHONPATH="{other}" exec "{sys.executable}" "$@"\n')
    elsewhere = tmp_path / "elsewhere"  # run outside the repository, whose prune_cli/ python3 would import from the current folder
    elsewhere.mkdir()
    imported = subprocess.run([str(python3), "-c", "import prune_cli; print(prune_cli.__file__)"], capture_output=True, text=True, cwd=elsewhere)
    assert imported.stdout.strip() == str(other / "prune_cli" / "__init__.py"), "python3 must import the other install"
    if cli_form == "entry_point":
        write_entry_point(bin_dir)
        cli = ""  # read as unset: `prune-cli`, found on PATH
    else:  # as in PRUNE_CLI="python -m prune_cli"; run_script writes the stand-in there
        cli = f"{sys.executable} {tmp_path / 'fake_cli.py'}"
    assert_finished_cell_is_done(tmp_path, elsewhere, PRUNE_CLI=cli, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_the_entry_points_python_imports_prune_cli_as_the_entry_point_does(tmp_path: Path):
    """Run from a folder that holds another prune_cli/ (a checkout of another version, with the
    grid's prune-cli a non-editable install): `python -m` would import that folder's copy, while
    the entry point imports the installed one. The recipe reader imports as the entry point does,
    so the finished cell is the cell and is not named KEPT."""
    checkout = another_install(tmp_path / "checkout")
    write_entry_point(tmp_path / "bin")
    assert_finished_cell_is_done(tmp_path, checkout, PRUNE_CLI="", PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
