"""scripts/fuzz_settings.py: settings at odd values through the checks and a tiny run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURE_GLUE, SCRIPTS, load_script

SCRIPT = SCRIPTS / "fuzz_settings.py"


def test_settings_that_pass_the_checks_run_and_a_refusal_is_no_failure(tmp_path: Path, tiny_model_dir: Path):
    """trainer.log_every=0 and =1 pass and run; trainer.log_every=-1 is refused in one line, which
    is what a check is for, not a failure."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tiny_model_dir), "--data-dir", str(FIXTURE_GLUE),
                           "--methods", "random", "--keys", "trainer.log_every", "--values", "0,1,-1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "2 settings passed the checks and ran; 0 failed other than by a one-line refusal"
    assert len(list((tmp_path / "outputs").rglob("metrics.json"))) == 2


def test_an_exception_other_than_a_refusal_is_reported(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    """A run that fails in a traceback (here one planted in scoring) is listed, with its setting."""
    from prune_cli import runner

    fuzz = load_script("fuzz_settings")

    def planted(*args, **kwargs):
        raise TypeError("'float' object cannot be interpreted as an integer")

    monkeypatch.setattr(runner, "score", planted)
    runs, bad = fuzz.sweep(tiny_model_dir, FIXTURE_GLUE, ["random"], ["1"], ("trainer.log_every",))
    assert runs == 1 and len(bad) == 1 and bad[0].startswith("random trainer.log_every=1: ")
    assert "BAD random trainer.log_every=1" in capsys.readouterr().out


def test_a_model_folder_that_is_not_there_is_one_line(tmp_path: Path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tmp_path / "nope"), "--data-dir", str(FIXTURE_GLUE)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == f"error: --model {tmp_path / 'nope'} is not a directory"


def test_hydras_own_settings_are_swept_too(in_tmp: Path, tiny_model_dir: Path, capsys):
    """`--keys hydra.` varies Hydra's settings (its record of a launch and its help texts left
    out): hydra.verbose=true runs, =null is refused in one line; none of Hydra's records is varied."""
    fuzz = load_script("fuzz_settings")
    runs, bad = fuzz.sweep(tiny_model_dir, FIXTURE_GLUE, ["random"], ["true", "null"], ("hydra.verbose", "hydra.runtime.", "hydra.help."))
    assert (runs, bad) == (1, [])
    assert len(list((in_tmp / "outputs").rglob("metrics.json"))) == 1
