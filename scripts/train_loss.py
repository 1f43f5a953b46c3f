"""Training loss at the end of each phase of finished runs, beside their dev score.

    python scripts/train_loss.py RUN_DIR [RUN_DIR ...] [--last 100]

Why: a dev score under the trivial answer can mean the model learnt nothing, or that it fitted
the training set and did not generalise. The run's history.jsonl (one record per optimiser step)
tells the two apart: this prints, for every phase a run went through (warmup, prune, head), the
mean training loss over the phase's last `--last` steps, and the run's dev metrics. docs/results.md
uses it for MRPC, where a learnt mask fits the training pairs.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from prune_cli import rundir
from prune_cli.errors import at_least, script_entry


def phase_losses(run_dir: Path, last: int) -> dict[str, tuple[int, float]]:
    """{phase: (steps in the phase, mean loss over its last `last` steps)}, in the order the run went."""
    by_phase: dict[str, list[float]] = {}
    for record in rundir.load_history(run_dir):
        by_phase.setdefault(record["phase"], []).append(float(record["loss"]))
    return {phase: (len(losses), statistics.fmean(losses[-last:])) for phase, losses in by_phase.items()}


def describe(run_dir: Path, last: int) -> str:
    metrics = rundir.load_metrics(run_dir)
    phases = "  ".join(f"{phase} ({steps} steps) {loss:.3f}" for phase, (steps, loss) in phase_losses(run_dir, last).items())
    scores = " ".join(f"{name}={value:.4f}" for name, value in metrics["metrics"].items())
    return f"{run_dir}\n  train loss, last {last} steps of each phase: {phases}\n  dev: {scores}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--last", type=at_least(1), default=100, help="steps at the end of each phase to average (default 100)")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        if not (run_dir / rundir.METRICS).is_file() or not (run_dir / rundir.HISTORY).is_file():
            raise SystemExit(f"error: {run_dir} is not a finished run directory (no {rundir.METRICS} or {rundir.HISTORY})")
        print(describe(run_dir, args.last))


if __name__ == "__main__":
    script_entry(main)
