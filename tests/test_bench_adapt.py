"""scripts/bench_adapt.py: the README main job timed from a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURE_GLUE, SCRIPTS, load_script


def test_relative_glue_dir_is_resolved_against_the_callers_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(FIXTURE_GLUE.parent)
    monkeypatch.setenv("GLUE_DIR", "glue")
    assert load_script("bench_adapt").child_environment()["GLUE_DIR"] == str(FIXTURE_GLUE)


def test_bench_adapt_runs_the_job_with_a_relative_glue_dir(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The documented spelling (GLUE_DIR relative to where it is typed) finds the data."""
    env = {**os.environ, "GLUE_DIR": os.path.relpath(FIXTURE_GLUE, tmp_path)}
    keep = tmp_path / "kept"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_adapt.py"), "--keep", str(keep), f"model.name_or_path={tiny_model_dir}",
         "trainer.max_steps=6", "trainer.batch_size=8", "trainer.device=cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["sparsity_realized"] == 0.5 and line["base_weights_unchanged"] is True
    assert 0.0 <= line["eval_accuracy"] <= 1.0 and Path(line["run_dir"], "metrics.json").is_file()
    assert line["peak_rss_mib"] > 100  # the job's own process (torch alone is more), not this script's
