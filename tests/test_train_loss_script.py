"""scripts/train_loss.py: the end-of-phase training loss docs/results.md quotes for MRPC."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_loss.py"


def fake_run(folder: Path) -> Path:
    folder.mkdir()
    records = [{"phase": "prune", "step": i, "loss": float(i), "sparsity": i / 10} for i in range(1, 5)]
    records += [{"phase": "head", "step": i, "loss": 0.5, "sparsity": 0.5} for i in range(5, 7)]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "metrics.json").write_text(json.dumps({  # the fields every record prune-cli writes has (rundir.RECORD_FIELDS)
        "task": "mrpc", "method": "adapt_by_pruning", "main_metric": "eval_f1", "main_metric_value": 0.8,
        "metrics": {"eval_f1": 0.8, "eval_accuracy": 0.7}, "sparsity_requested": 0.5, "sparsity_realized": 0.5}))
    return folder


def test_mean_over_the_last_steps_of_each_phase_beside_the_dev_scores(tmp_path: Path):
    run = fake_run(tmp_path / "run")
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--last", "2"], capture_output=True, text=True, check=True)
    assert "prune (4 steps) 3.500  head (2 steps) 0.500" in done.stdout  # mean of losses 3 and 4
    assert "eval_f1=0.8000 eval_accuracy=0.7000" in done.stdout


def test_a_folder_that_is_not_a_finished_run_is_a_one_line_error(tmp_path: Path):
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "not a finished run directory" in done.stderr


def test_an_unreadable_metrics_file_is_a_one_line_error(tmp_path: Path):
    run = fake_run(tmp_path / "run")
    (run / "metrics.json").write_text("{not json")
    done = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "cannot be read" in done.stderr


def test_a_history_line_cut_short_is_a_one_line_error(tmp_path: Path):
    run = fake_run(tmp_path / "run")
    history = run / "history.jsonl"
    history.write_text(history.read_text()[:-20])  # the last record cut short
    done = subprocess.run([sys.executable, str(SCRIPT), str(run)], capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "history.jsonl, line 6, is not JSON" in done.stderr
