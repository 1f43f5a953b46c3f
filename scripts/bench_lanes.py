"""Throughput of K runs side by side with cores/K threads each, against one run on every core.

    python scripts/bench_lanes.py --model minilm --batch-size 32 --seq-len 14 --lanes 2

Why: a grid of many runs (`scripts/reproduce.sh`, a Hydra joblib sweep) cares about steps per
second of the whole machine, not of one run. MiniLM's matmuls at SST-2 lengths are too small to
keep every core busy, so K lanes of cores/K threads can finish more steps per second than one run
on all cores. This measures by how much, for each step kind of `scripts/bench_step.py`:

1. one bench_step process with torch's default threads (the baseline, measured in this run);
2. K bench_step processes started together, each with --threads cores/K.

Printed per kind: the baseline's step time, each lane's, and the throughput ratio
sum_i(1 / lane_i) / (1 / baseline) (> 1: lanes finish more steps per second). Also each lane's
b/a (adapt-by-pruning step over fine-tuning step), since that is what a lane-run grid pays for
mask learning. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from prune_cli.errors import at_least, script_entry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import MODEL_CHOICES  # noqa: E402  (the models bench_step can build)

BENCH_STEP = Path(__file__).resolve().parent / "bench_step.py"
KINDS = ("a_finetune_s", "b_adapt_s", "d_dense_s", "d_masked_s")


def throughput_ratio(baseline_s: float, lane_s: list[float]) -> float:
    """Steps per second of all lanes together over the baseline's steps per second."""
    return sum(1.0 / t for t in lane_s) * baseline_s


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def run_baseline(argv: list[str]) -> dict:
    return last_json(subprocess.run([sys.executable, str(BENCH_STEP), *argv], check=True, capture_output=True, text=True).stdout)


def run_lanes(argv: list[str], lanes: int, threads: int) -> list[dict]:
    """Start every lane before waiting for any, so they overlap from the first step."""
    procs = [subprocess.Popen([sys.executable, str(BENCH_STEP), *argv, "--threads", str(threads)], stdout=subprocess.PIPE, text=True)
             for _ in range(lanes)]
    outputs = [p.communicate()[0] for p in procs]
    for p in procs:
        if p.returncode:
            raise SystemExit(f"a lane exited with {p.returncode}")
    return [last_json(out) for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODEL_CHOICES, default="minilm")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--seq-len", type=at_least(1), default=14)
    parser.add_argument("--repeats", type=at_least(1), default=8)
    parser.add_argument("--lanes", type=at_least(1), default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // args.lanes)
    # (c), the naive reference, is not part of a grid; skipping it keeps the lanes' work alike
    argv = ["--model", args.model, "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
            "--repeats", str(args.repeats), "--skip-naive", "--device", "cpu"]

    baseline = run_baseline(argv)
    lanes = run_lanes(argv, args.lanes, threads)
    print(f"model={args.model} batch={args.batch_size} seq_len={args.seq_len} cores={cores}: "
          f"1 process x {baseline['threads']} threads vs {args.lanes} lanes x {threads} thread(s)")
    ratios = {}
    for kind in KINDS:
        lane_s = [lane[kind] for lane in lanes]
        ratios[kind] = throughput_ratio(baseline[kind], lane_s)
        print(f"  {kind:14s} baseline {baseline[kind]:.4f} s   lanes " + ", ".join(f"{t:.4f}" for t in lane_s)
              + f" s   throughput x{ratios[kind]:.2f}")
    lane_b_over_a = [lane["adapt_over_finetune"] for lane in lanes]
    print(f"  b/a in one process: {baseline['adapt_over_finetune']:.3f}; in each lane: " + ", ".join(f"{r:.3f}" for r in lane_b_over_a))
    print(json.dumps({"model": args.model, "seq_len": args.seq_len, "cores": cores, "lanes": args.lanes, "threads_per_lane": threads,
                      "baseline": baseline, "lane_runs": lanes, "throughput_ratio": ratios, "lane_b_over_a": lane_b_over_a}))


if __name__ == "__main__":
    script_entry(main)
