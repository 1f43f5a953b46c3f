"""Time the README's main job end to end and print one JSON line.

    GLUE_DIR=../shared/glue python scripts/bench_adapt.py [--task stsb] [--keep DIR] [overrides ...]

Runs `prune-cli adapt --task sst2 --sparsity 0.5` (another task with --task, plus any extra
override words) in a fresh folder (a temporary one, or DIR with --keep so the run directory can be
re-scored with `prune-cli evaluate`), then reads the run's metrics.json: wall time of the whole command (imports, loading,
tokenising, training, scoring, writing), training examples per second, the job's peak host
memory (its peak RSS, as `/usr/bin/time -v` reports it), realized sparsity, the dev metric, and
whether the base weights were left unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prune_cli.errors import script_entry


def child_environment() -> dict[str, str]:
    """This process's environment, with a relative GLUE_DIR made absolute.

    The job runs in a fresh folder, so `GLUE_DIR=../shared/glue` (the README's spelling) would
    otherwise be read from there and the task would not be found.
    """
    env = os.environ.copy()
    if env.get("GLUE_DIR"):
        env["GLUE_DIR"] = str(Path(env["GLUE_DIR"]).resolve())
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    args, extra = parser.parse_known_args()
    command = [sys.executable, "-m", "prune_cli.cli", "adapt", "--task", args.task, "--sparsity", "0.5", "trainer.progress=false", *extra]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.keep.resolve()) if args.keep else scratch
        started = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, env=child_environment(), capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child waited for: the job
        if done.returncode != 0:
            sys.exit(f"prune-cli failed ({done.returncode}): {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
        metrics_file = max(Path(tmp, "outputs").rglob("metrics.json"), key=lambda p: p.stat().st_mtime)
        metrics = json.loads(metrics_file.read_text())
        config = (metrics_file.parent / ".hydra" / "config.yaml").read_text()
    batch_size = int(next(line.split(":")[1] for line in config.splitlines() if line.strip().startswith("batch_size:")))
    print(json.dumps({
        "command": f"prune-cli adapt --task {args.task} --sparsity 0.5 " + " ".join(extra),
        "run_dir": str(metrics_file.parent) if args.keep else None,
        "wall_seconds": round(wall, 1),
        "train_seconds": metrics["train_seconds"],
        "train_examples_per_second": round(metrics["steps"] * batch_size / metrics["train_seconds"], 1),
        "peak_rss_mib": round(peak_rss / (2**20 if sys.platform == "darwin" else 2**10), 1),  # bytes on macOS, KiB on Linux
        "sparsity_requested": metrics["sparsity_requested"],
        "sparsity_realized": round(metrics["sparsity_realized"], 6),
        metrics["main_metric"]: round(metrics["main_metric_value"], 4),
        "base_weights_unchanged": metrics["base_weights_unchanged"],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {metrics['device']}",
    }))


if __name__ == "__main__":
    script_entry(main)
