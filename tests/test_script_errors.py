"""The files of scripts/ end on a user's mistake as the CLI's commands do: one line, no traceback."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCRIPTS


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("script", "args", "message"), [
    ("score_by_source", ["{tmp}/nowhere"], "error: {tmp}/nowhere is not a directory"),
    ("mask_size", ["{tmp}/nowhere"], "error: {tmp}/nowhere is not a directory (nothing is there)"),
    ("holdout_rows", ["--tasks", "sst2", "data.dir={tmp}/no-glue"], "error: task 'sst2': no folder {tmp}/no-glue/SST-2"),
    ("vocab_coverage", ["not-an-override"], "error: invalid override: Error parsing override 'not-an-override'"),
], ids=["score_by_source", "mask_size", "holdout_rows", "vocab_coverage"])
def test_a_user_error_from_prune_cli_ends_a_script_in_one_line(tmp_path: Path, script: str, args: list[str], message: str):
    """These raised prune-cli's UserError out of main(): its one-line message came at the end of a traceback."""
    done = run_script(script, *(arg.format(tmp=tmp_path) for arg in args))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1].startswith(message.format(tmp=tmp_path)), done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda path: path.name)
def test_every_script_answers_help(path: Path):
    """mask_size.py read its arguments by hand and took --help for a run folder (an error about a
    mask file at '--help/mask.safetensors'); every script says how it is used, and exits 0."""
    done = run_script(path.stem, "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda path: path.name)
def test_every_script_runs_its_main_through_script_entry(path: Path):
    """One way for every script to end on a UserError, so the next script written does not forget it."""
    tree = ast.parse(path.read_text())
    [guard] = [node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
    assert "script_entry(" in ast.unparse(guard), f"{path.name}'s __main__ block calls main() without errors.script_entry"


def test_overrides_typed_after_tasks_reach_every_task(tmp_path: Path):
    """`--tasks A B data.dir=...` (the order vocab_coverage's usage line shows) handed data.dir to
    --tasks as a task name, so the first task ran on $GLUE_DIR or the hub, not the folder named."""
    from conftest import FIXTURE_GLUE

    from prune_cli.config import split_tasks_and_overrides

    assert split_tasks_and_overrides(["sst2", "data.dir=x", "cola"], ["seed=2"]) == (["sst2", "cola"], ["data.dir=x", "seed=2"])
    done = run_script("holdout_rows", "--tasks", "sst2", f"data.dir={FIXTURE_GLUE}", "--size", "2")
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.strip().splitlines()
    assert '"task": "sst2"' in line and '"size": 2' in line


@pytest.mark.parametrize(("script", "args", "message"), [
    ("bench_step", ["--model", "tiny", "--repeats", "0"], "argument --repeats: 0 must be >= 1"),
    ("bench_inference", ["--processes", "-1"], "argument --processes: -1 must be >= 1"),
    ("bootstrap_gap", ["a", "b", "--resamples", "1"], "argument --resamples: 1 must be >= 2"),
    ("train_loss", ["run", "--last", "all"], "argument --last: 'all' is not a whole number"),
], ids=["bench_step repeats", "bench_inference processes", "bootstrap_gap resamples", "train_loss last"])
def test_a_count_out_of_range_is_refused_by_the_parser(script: str, args: list[str], message: str):
    """`--repeats 0` reached a traceback (no median of no timings) once the models were built;
    `--resamples 1` a standard deviation of one draw; `--last 0` silently meant every step."""
    done = run_script(script, *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr and message in done.stderr, done.stderr
