"""history.jsonl as a run goes (`rundir.LiveHistory`): each step's record is on disk when the step
ends, so a run of hours can be followed (`analyze curve` on it) and a stopped run shows where it
got; a resumed run lists each step once; a finished run's file is the one its record has the digest of."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Killed, assert_one_line_error, crash_at, read_metrics, run_cli, tiny_overrides

from prune_cli import rundir


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / rundir.HISTORY).read_text().splitlines()]


def _without_seconds(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in (run_dir / rundir.HISTORY).read_text().splitlines()]


def test_a_stopped_run_keeps_the_steps_it_took_and_a_resumed_one_lists_each_step_once(in_tmp: Path, tiny_model_dir: Path,
                                                                                        monkeypatch: pytest.MonkeyPatch):
    """Killed after step 5 with a checkpoint after step 4: history.jsonl holds steps 1-5 (the file
    used to be written at the end only, so a killed run had none). Resumed from step 4, step 5 is
    taken again and listed once: killed again after it, the file holds 1-5, not 1-5 then 5. The run
    that then finishes has the uninterrupted run's history, and its metrics.json the file's digest."""
    common = ["--task", "stsb", "checkpoint.every_steps=2", *tiny_overrides(tiny_model_dir, "trainer.eval_every=2", steps=8)]
    assert run_cli("adapt", *common, "hydra.run.dir=uninterrupted").exit_code == 0
    killed = in_tmp / "killed"
    with monkeypatch.context() as patch:
        crash_at(patch, 5)
        with pytest.raises(Killed):
            run_cli("adapt", *common, "hydra.run.dir=killed")
    assert _steps(killed) == [1, 2, 3, 4, 5] and not (killed / rundir.METRICS).exists()
    assert _without_seconds(killed) == _without_seconds(in_tmp / "uninterrupted")[:5]
    # how far it got beside where its checkpoint is: what a resume takes again
    assert_one_line_error(run_cli("evaluate", "killed"), "killed is a run that has not finished (no metrics.json): stopped or killed after "
                          "step 5 of 8 in phase 'prune'; it holds a checkpoint after step 4 of phase 'prune'")

    with monkeypatch.context() as patch:
        crash_at(patch, 1)  # the resumed run's first step: step 5 again
        with pytest.raises(Killed):
            run_cli("adapt", "--resume", str(killed))
    assert _steps(killed) == [1, 2, 3, 4, 5]

    result = run_cli("adapt", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    assert _without_seconds(killed) == _without_seconds(in_tmp / "uninterrupted")
    digest = read_metrics(killed)[rundir.WRITTEN_DIGESTS][rundir.HISTORY]
    assert digest == rundir.file_sha256(killed / rundir.HISTORY)


def test_a_run_stopped_before_its_first_checkpoint_is_named_as_such_and_runs_again_from_step_0(in_tmp: Path, tiny_model_dir: Path,
                                                                                               monkeypatch: pytest.MonkeyPatch):
    """Its history makes the folder a stopped run's, not an empty one: the same folder given to a new
    run is refused with the command that goes on with it, and --resume starts from step 0 with the
    steps taken before dropped, not listed twice."""
    common = [*tiny_overrides(tiny_model_dir, "checkpoint.every_steps=0", steps=6), "hydra.run.dir=killed"]
    with monkeypatch.context() as patch:
        crash_at(patch, 3)
        with pytest.raises(Killed):
            run_cli("adapt", *common)
    killed = in_tmp / "killed"
    assert _steps(killed) == [1, 2, 3]
    assert_one_line_error(run_cli("adapt", *common), "run directory killed holds a stopped run; never overwriting it",
                          "no checkpoint; `prune-cli adapt --resume killed` runs it again from step 0")
    result = run_cli("adapt", "--resume", str(killed))
    assert result.exit_code == 0, result.output
    assert _steps(killed) == [1, 2, 3, 4, 5, 6]


def test_analyze_curve_follows_a_run_that_is_going_on_and_one_that_stopped(in_tmp: Path, tiny_model_dir: Path):
    """A real run in another process, scored every 5 steps: while it goes on, `analyze curve` lists the
    steps scored so far under "(going on)"; after a SIGKILL, under "(stopped)". A last line caught
    half-written is left out of an unfinished run (where a finished run's file is whole)."""
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "checkpoint.every_steps=0", "trainer.epochs=null",
               *tiny_overrides(tiny_model_dir, "trainer.eval_every=5", steps=3000), "hydra.run.dir=going"]
    process = subprocess.Popen(command, cwd=in_tmp, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    going = in_tmp / "going"
    try:
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            if (going / rundir.HISTORY).exists() and any("eval_accuracy" in line for line in (going / rundir.HISTORY).read_text().splitlines()):
                break
            time.sleep(0.05)
        result = run_cli("analyze", "curve", str(going), "--out", str(in_tmp / "curve"))
        assert process.poll() is None, "the run finished before it could be read going on; give it more steps"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert result.exit_code == 0, result.output
    assert "1 of 1 runs not finished" in result.output
    assert {line.split(",")[0] for line in (in_tmp / "curve" / "curve.csv").read_text().splitlines()[1:]} == {
        "sst2/adapt_by_pruning/s0.5/seed42 (going on)"}
    assert not (going / rundir.METRICS).exists()

    whole_lines = (going / rundir.HISTORY).read_text().split("\n")[:-1]  # whole lines, as an unfinished run is read
    scored = [record for record in map(json.loads, whole_lines) if "eval_accuracy" in record]
    with (going / rundir.HISTORY).open("a") as history:
        history.write('{"phase": "prune", "step": 99')  # a line being written as the run was killed
    result = run_cli("analyze", "curve", str(going), "--out", str(in_tmp / "curve2"))
    assert result.exit_code == 0, result.output
    listed = [line for line in (in_tmp / "curve2" / "curve.csv").read_text().splitlines()[1:]]
    assert {line.split(",")[0] for line in listed} == {"sst2/adapt_by_pruning/s0.5/seed42 (stopped)"}
    assert [int(line.split(",")[2]) for line in listed] == [record["step"] for record in scored]
    (going / rundir.FAILED).write_text(json.dumps({"error": "out of memory"}))  # a sweep job that failed
    result = run_cli("analyze", "curve", str(going), "--out", str(in_tmp / "curve3"))
    assert result.exit_code == 0, result.output
    assert (in_tmp / "curve3" / "curve.csv").read_text().splitlines()[1].startswith("sst2/adapt_by_pruning/s0.5/seed42 (failed),")


def test_analyze_curve_on_an_unfinished_run_that_has_scored_nothing_yet_says_so(in_tmp: Path, tiny_model_dir: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        crash_at(patch, 2)
        with pytest.raises(Killed):
            run_cli("adapt", "--method", "finetune", "--sparsity", "0", *tiny_overrides(tiny_model_dir, "trainer.eval_every=4"),
                    "hydra.run.dir=killed")
    assert_one_line_error(run_cli("analyze", "curve", "killed"), "killed is a run that has not finished (stopped, 2 step(s) in its history.jsonl)",
                          "has scored no eval_accuracy yet")
    with monkeypatch.context() as patch:
        crash_at(patch, 5)  # again from step 0 (no checkpoint), now past step 4, which is scored
        with pytest.raises(Killed):
            run_cli("adapt", "--resume", "killed")
    result = run_cli("analyze", "curve", "killed", "--out", "curve")
    assert result.exit_code == 0, result.output
    # labelled as its metrics.json will label it: a sparsity given as 0 is 0.0 there
    assert {line.split(",")[0] for line in (in_tmp / "curve" / "curve.csv").read_text().splitlines()[1:]} == {
        "sst2/finetune/s0.0/seed42 (stopped)"}


def test_how_far_an_unfinished_run_got_is_read_from_the_last_whole_line_of_its_history(tmp_path: Path):
    """`rundir.last_step` reads the file's end only (a long run's history is megabytes), skips a line
    still being written, and says nothing of a file that is not a run's history."""
    assert rundir.last_step(tmp_path) is None  # no step yet
    records = [{"phase": "prune", "step": step, "total": 3000, "loss": 0.5, "sparsity": 0.1, "note": "x" * 100} for step in range(1, 3001)]
    (tmp_path / rundir.HISTORY).write_text("".join(json.dumps(record) + "\n" for record in records) + '{"phase": "head", "st')
    assert (tmp_path / rundir.HISTORY).stat().st_size > 64 << 10
    assert rundir.last_step(tmp_path) == "3000 of 3000 in phase 'prune'"
    (tmp_path / rundir.HISTORY).write_text(json.dumps({"phase": "head", "step": 7}) + "\n")
    assert rundir.last_step(tmp_path) == "7 in phase 'head'"
    for text in ("not json\n", "[1, 2]\n", json.dumps({"phase": "head", "step": "7"}) + "\n", ""):
        (tmp_path / rundir.HISTORY).write_text(text)
        assert rundir.last_step(tmp_path) is None, text


def test_a_run_that_finishes_while_analyze_curve_reads_it_is_read_as_finished(in_tmp: Path, tiny_model_dir: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """Seen on a run that ended while `analyze curve` read its config: its folder, let go by then,
    was not held by another process, so the finished run was labelled "(stopped)"."""
    assert run_cli("adapt", *tiny_overrides(tiny_model_dir, "trainer.eval_every=2"), "hydra.run.dir=run").exit_code == 0
    metrics = in_tmp / "run" / rundir.METRICS
    written = metrics.read_bytes()
    metrics.unlink()
    reading = rundir.load_complete_config

    def the_run_finishes_meanwhile(run_dir: Path):
        metrics.write_bytes(written)
        return reading(run_dir)

    monkeypatch.setattr(rundir, "load_complete_config", the_run_finishes_meanwhile)
    result = run_cli("analyze", "curve", "run", "--out", "curve")
    assert result.exit_code == 0, result.output
    assert "not finished" not in result.output
    assert {line.split(",")[0] for line in (in_tmp / "curve" / "curve.csv").read_text().splitlines()[1:]} == {"sst2/adapt_by_pruning/s0.5/seed42"}
