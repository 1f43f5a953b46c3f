"""scripts/gpu_timing.sh: the GPU section of docs/performance.md, run here on the CPU at toy size so
that the script a lent GPU gets is known to work before its minutes are spent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURE_GLUE, SCRIPTS


def run_script(out: Path, tokenizer: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "GLUE_DIR": str(FIXTURE_GLUE),
           "DEVICE": "cpu", "STEPS": "2", "SHAPES": "tiny", "E2E_SHAPE": "tiny", "PRECISIONS": "fp32", "REPEATS": "1",
           "TOKENIZER": str(tokenizer), **settings}
    return subprocess.run(["bash", str(SCRIPTS / "gpu_timing.sh"), str(out)], env=env, capture_output=True, text=True, timeout=600)


def test_every_part_runs_and_leaves_its_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = run_script(tmp_path / "out", tiny_model_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED" not in done.stdout
    out = tmp_path / "out"
    step = json.loads((out / "step_tiny_fp32.txt").read_text().strip().splitlines()[-1])
    assert step["device"] == "cpu" and step["b_adapt_s"] > 0
    for method, sparsity in (("adapt_by_pruning", 0.5), ("finetune", 0.0)):
        line = json.loads((out / f"sst2_tiny_{method}.txt").read_text().strip().splitlines()[-1])
        assert f"method={method}" in line["command"] and "trainer=gpu" in line["command"]
        assert line["sparsity_realized"] == sparsity and line["train_examples_per_second"] > 0


def test_a_failed_part_is_named_the_others_run_and_the_exit_is_nonzero(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A device that does not exist fails every timed part; the environment part still ran."""
    done = run_script(tmp_path / "out", tiny_model_dir, DEVICE="cuda:7", E2E_SHAPE="none")
    assert done.returncode == 1
    assert "== step_tiny_fp32 FAILED" in done.stdout
    assert (tmp_path / "out" / "environment.txt").read_text().startswith("python ")
