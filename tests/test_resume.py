"""Resume: a run killed at any step and continued with `--resume` ends bit-identical to one that
was never interrupted (mask, head, metrics and step history)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import only_run_dir, read_metrics, run_cli, tiny_overrides
from prune_cli import checkpointing, rundir


class _Killed(BaseException):
    """Stands in for SIGKILL in-process: a BaseException skips every `except Exception` cleanup."""


def _crash_at(monkeypatch: pytest.MonkeyPatch, global_step: int) -> None:
    """Let the run die after `global_step` optimiser steps, counted over all of its phases."""
    original = checkpointing.Checkpointer.maybe_save
    calls = {"n": 0}

    def dying(self, phase, steps_done, state):
        original(self, phase, steps_done, state)
        calls["n"] += 1
        if calls["n"] == global_step:
            raise _Killed(f"killed in {phase} at {steps_done}")

    monkeypatch.setattr(checkpointing.Checkpointer, "maybe_save", dying)


def _same_run(a: Path, b: Path) -> None:
    for name in (rundir.MASK, rundir.HEAD, rundir.ENCODER):
        assert (a / name).exists() == (b / name).exists(), name
        if (a / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"
    ma, mb = read_metrics(a), read_metrics(b)
    assert ma["metrics"] == mb["metrics"]
    assert ma["method_details"] == mb["method_details"]
    history = [[{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (d / rundir.HISTORY).read_text().splitlines()] for d in (a, b)]
    assert history[0] == history[1]


# (method, extra overrides, sparsity, steps, kill after this many steps over all phases, phase it
# dies in); adapt-by-pruning prunes over the first quarter of its budget here, then trains the
# head; with the warm-up, the head trains alone for 4 steps and pruning runs from step 4 to 10.
QUICK_PRUNING = ["method.prune_fraction=0.25"]
WARMUP = [*QUICK_PRUNING, "method.head_warmup_fraction=0.1"]
HOLD = [*QUICK_PRUNING, "method.hold_fraction=0.25"]  # s is held from about step 10 to step 20
# fp16's loss scale is run state too; the test makes it double every step (and halve on overflow),
# so a resume that started again from the initial scale would round differently and end elsewhere
IN_FP16 = "trainer.precision=fp16"
FP16 = [*QUICK_PRUNING, IN_FP16]
CASES = [
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", QUICK_PRUNING, "0.5", 40, 33, "head"),
    ("adapt_by_pruning", WARMUP, "0.5", 40, 3, "warmup"),
    ("adapt_by_pruning", WARMUP, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", HOLD, "0.5", 40, 16, "prune"),
    ("adapt_by_pruning", FP16, "0.5", 40, 7, "prune"),
    ("adapt_by_pruning", FP16, "0.5", 40, 33, "head"),
    ("finetune", [IN_FP16], "0.0", 12, 7, "finetune"),
    ("gmp", [], "0.5", 12, 17, "head"),
    ("imp", [], "0.5", 16, 9, "imp round 3/4"),
    ("finetune", [], "0.0", 12, 7, "finetune"),
    ("random", [], "0.5", 12, 8, "head"),
]


@pytest.mark.parametrize(("method", "extra", "sparsity", "steps", "kill_at", "phase"), CASES,
                         ids=[f"{c[0]}{'-warmup' if c[1] is WARMUP else '-hold' if c[1] is HOLD else ''}"
                              f"{'-fp16' if IN_FP16 in c[1] else ''}-{c[5]}" for c in CASES])
def test_killed_run_resumes_bit_identical(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          method: str, extra: list[str], sparsity: str, steps: int, kill_at: int, phase: str):
    if IN_FP16 in extra:
        monkeypatch.setattr(torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, growth_interval=1))
    common = [*extra, f"method={method}", f"sparsity={sparsity}", "checkpoint.every_steps=3", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=steps)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0

    with monkeypatch.context() as patch:
        _crash_at(patch, kill_at)
        with pytest.raises(_Killed, match=f"killed in {phase}"):
            run_cli("adapt", *common, "hydra.run.dir=killed")
    killed = in_tmp / "killed"
    assert not (killed / rundir.METRICS).exists()
    assert (killed / rundir.CHECKPOINT_STATE).exists()

    result = run_cli("adapt", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    _same_run(in_tmp / "uninterrupted", killed)
    assert read_metrics(killed)["resumed_from"]["steps_done"] > 0
    assert not (killed / rundir.CHECKPOINT).exists(), "a clean finish removes the checkpoint"


def test_checkpoint_kept_on_request(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "checkpoint.every_steps=2", "checkpoint.keep=true", *tiny_overrides(tiny_model_dir, steps=6))
    assert result.exit_code == 0, result.output
    run_dir = only_run_dir(in_tmp / "outputs")
    assert (run_dir / rundir.CHECKPOINT_STATE).exists()
    assert read_metrics(run_dir)["checkpoints"]["saved"] >= 2


def test_sigkilled_subprocess_resumes_bit_identical(in_tmp: Path, tiny_model_dir: Path):
    """A real SIGKILL at an arbitrary moment after the first checkpoint, then `--resume`."""
    common = ["checkpoint.every_steps=25", "trainer.epochs=null", *tiny_overrides(tiny_model_dir, steps=300)]
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", *common]
    env = dict(os.environ)
    subprocess.run([*command, "hydra.run.dir=uninterrupted"], cwd=in_tmp, env=env, check=True, capture_output=True, timeout=300)

    killed = in_tmp / "killed"
    process = subprocess.Popen([*command, "hydra.run.dir=killed"], cwd=in_tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = killed / rundir.CHECKPOINT_PROGRESS
    deadline = time.monotonic() + 240
    while not progress.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # somewhere between two checkpoints, possibly mid-write
    process.send_signal(signal.SIGKILL)
    process.wait()
    if (killed / rundir.METRICS).exists():
        pytest.fail("the run finished before it could be killed; give it more steps")

    result = subprocess.run([*command[:4], "--resume", str(killed)], cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    _same_run(in_tmp / "uninterrupted", killed)


def test_resume_refuses_a_finished_run(in_tmp: Path, tiny_model_dir: Path):
    assert run_cli("adapt", *tiny_overrides(tiny_model_dir)).exit_code == 0
    run_dir = only_run_dir(in_tmp / "outputs")
    result = run_cli("adapt", "--resume", str(run_dir))
    assert result.exit_code == 2
    assert "already finished" in result.output


def test_resume_refuses_a_folder_that_is_not_a_run(in_tmp: Path):
    result = run_cli("adapt", "--resume", str(in_tmp))
    assert result.exit_code == 2
    assert "not a prune-cli run directory" in result.output


def test_resume_refuses_extra_options(in_tmp: Path):
    result = run_cli("adapt", "--resume", str(in_tmp), "--task", "cola")
    assert result.exit_code == 2
    assert "drop the other options" in result.output


def test_resume_refuses_a_corrupt_checkpoint(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        _crash_at(patch, 5)
        with pytest.raises(_Killed):
            run_cli("adapt", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, steps=12), "hydra.run.dir=killed")
    state = in_tmp / "killed" / rundir.CHECKPOINT_STATE
    state.write_bytes(state.read_bytes()[:100])
    result = run_cli("adapt", "--resume", str(in_tmp / "killed"))
    assert result.exit_code == 2
    assert "cannot be read" in result.output and "delete the checkpoint folder" in result.output
