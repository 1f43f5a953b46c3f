"""scripts/ab_step.sh: bench_step.py on this checkout against an older prune_cli, alternating fresh
processes. Run here on the CPU at toy size, so that the script a lent GPU gets is known to work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import SCRIPTS

REPO = SCRIPTS.parent


def run_script(old: str, out: Path, *bench_args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PROCESSES": "1"}
    return subprocess.run(["bash", str(SCRIPTS / "ab_step.sh"), old, str(out), *bench_args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_each_side_runs_its_own_code_and_both_are_summarised(tmp_path: Path) -> None:
    """The old side imports the folder's prune_cli, not this checkout's (nor an installed one)."""
    old = tmp_path / "old"
    shutil.copytree(REPO / "prune_cli", old / "prune_cli", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "configs", old / "configs")
    done = run_script(str(old), tmp_path / "out", "--model", "tiny", "--device", "cpu", "--repeats", "1", "--warmup", "1", "--skip-naive")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    imports = [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("imports ")]
    assert imports == [str(REPO / "prune_cli" / "__init__.py"), str(old / "prune_cli" / "__init__.py")]
    assert done.stdout.index("== new 1") < done.stdout.index("== old 1")
    for side in ("new", "old"):
        result = json.loads((tmp_path / "out" / f"{side}_1.txt").read_text().strip().splitlines()[-1])
        assert result["model"] == "tiny" and result["b_adapt_s"] > 0
        assert any(line.startswith(f"{side} adapt_over_finetune") and "median" in line for line in done.stdout.splitlines())


def test_an_old_version_that_cannot_be_found_is_one_clear_line(tmp_path: Path) -> None:
    done = run_script(str(tmp_path / "no-such-checkout"), tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"ab_step: {tmp_path / 'no-such-checkout'} is neither a folder nor a commit of this repository with prune_cli/ and configs/"]
