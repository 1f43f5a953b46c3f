"""How much of a gap between two sets of runs the draw of scored rows alone could move: a paired
bootstrap over the rows.

    GLUE_DIR=../shared/glue python scripts/bootstrap_gap.py \
        outputs/dev-by-source/stsb/adapt_by_pruning/s0.5 outputs/dev-by-source/stsb/finetune/s0.0 \
        [--column filename --in-train --source in-train --source all] [--resamples 2000]

Why: docs/results.md compares ours − fine-tuning on STS-B's dev pairs with the same gap on pairs
held out of the training split (e.g. −1.4 against −2.1 to −2.4 points), over three seeds each. The
seeds are the same on both sets, but the rows are a draw: a few hundred pairs of one file can move a
Spearman gap by a point. This resamples the scored rows with replacement (the same resample for
every seed and both sides), recomputes the gap (the mean over seeds of (first − second) × 100), and
prints the gap, the resamples' standard deviation (its standard error over rows) and their 2.5% and
97.5% percentiles, one JSON line per source asked for. It measures the rows' noise only, not the seeds'. Two gaps
measured on different row sets (dev and held-out pairs) have independent errors, so their
difference has the error sqrt(se1² + se2²).

Each side is the folder that holds its runs' `seed<N>` folders; the seeds both have are paired, and
both sides must have been scored on the same rows. `--source` keeps only the rows of one source (as
scripts/score_by_source.py names it with the same `--column` and `--in-train`), `all` (the default)
every row; given several times, it prints a line for each, from one prediction of the runs. With
`all` alone no source column is read, so it also serves tasks whose files name no source (SST-2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from prune_cli import rundir
from prune_cli.errors import at_least, script_entry
from prune_cli.metrics import task_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_by_source import ScoredRows, scored_rows  # noqa: E402  (the runs' rows, predictions and sources)

ALL = "all"  # --source for every scored row


def seed_dirs(folder: Path) -> dict[int, Path]:
    """{seed: run folder} of the finished runs directly under `folder` (reproduce.sh's `seed<N>`
    folders), each keyed by the seed its own metrics.json records, as pair_by_source.py's lines are."""
    if not folder.is_dir():
        raise SystemExit(f"{folder} is not a folder of seed<N> runs")
    found: dict[int, Path] = {}
    for run in rundir.runs_in(folder):
        if run.parent == folder and (run / rundir.METRICS).is_file():
            seed = rundir.load_metrics(run)["seed"]
            if seed in found:
                raise SystemExit(f"{found[seed]} and {run} both ran seed {seed}; give one set of runs per folder")
            found[seed] = run
    if not found:
        raise SystemExit(f"no seed<N> run folders under {folder}")
    return found


def gap(pairs: list[tuple[ScoredRows, ScoredRows]], rows: np.ndarray) -> float:
    """Mean over the seed pairs of (first − second) × 100, on the given row indices."""
    def score(run: ScoredRows) -> float:
        return task_metrics([run.metric], run.predictions[rows], run.labels[rows])[run.metric]
    return float(np.mean([100 * (score(first) - score(second)) for first, second in pairs]))


def bootstrap(pairs: list[tuple[ScoredRows, ScoredRows]], keep: np.ndarray, resamples: int, seed: int) -> dict:
    """The gap on the kept rows, and its spread over `resamples` draws of those rows with replacement."""
    rng = np.random.default_rng(seed)
    draws = [gap(pairs, rng.choice(keep, size=keep.size, replace=True)) for _ in range(resamples)]
    return {"gap": round(gap(pairs, keep), 2), "se": round(float(np.std(draws, ddof=1)), 2),
            "ci95": [round(float(v), 2) for v in np.percentile(draws, [2.5, 97.5])]}


def paired_runs(first: Path, second: Path, column: str | None, in_train: bool) -> tuple[list[int], list[tuple[ScoredRows, ScoredRows]]]:
    """The seeds both sides have, and each seed's two runs' scored rows, checked to be the same rows."""
    a, b = seed_dirs(first), seed_dirs(second)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f"{first} and {second} share no seed")
    pairs = [(scored_rows(a[s], column, in_train), scored_rows(b[s], column, in_train)) for s in seeds]
    reference = pairs[0][0]
    for one, other in pairs:
        for run in (one, other):
            if run.texts != reference.texts or not np.array_equal(run.labels, reference.labels):
                raise SystemExit("the runs were scored on different rows; pair runs scored on the same split")
    return seeds, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="the folder of the first side's seed<N> runs")
    parser.add_argument("second", type=Path, help="the folder of the second side's")
    parser.add_argument("--column", default="genre", help="the GLUE file column that names each row's source")
    parser.add_argument("--in-train", action="store_true", help="sources grouped as score_by_source.py --in-train does")
    parser.add_argument("--source", action="append",
                        help="keep only the rows of this source (or group), or 'all'; repeatable (default: all)")
    parser.add_argument("--resamples", type=at_least(2), default=2000)
    parser.add_argument("--seed", type=at_least(0), default=0, help="the resampling's random seed")
    args = parser.parse_args()
    asked = args.source or [ALL]
    # the files' source column is read only when some rows are to be kept by it: SST-2's have none
    column = None if set(asked) == {ALL} else args.column
    in_train = args.in_train and column is not None  # no column read, so no grouping by it either
    seeds, pairs = paired_runs(args.first, args.second, column, in_train)
    sources = pairs[0][0].source
    for source in asked:
        keep = np.arange(sources.size) if source == ALL else np.flatnonzero(sources == source)
        if keep.size == 0:
            raise SystemExit(f"no rows of source {source!r}; the sources are {', '.join(sorted(set(sources.tolist())))}")
        result = bootstrap(pairs, keep, args.resamples, args.seed)
        print(json.dumps({"first": str(args.first), "second": str(args.second), "source": source,
                          "column": column, "in_train": in_train, "rows": int(keep.size), "seeds": seeds,
                          **result, "resamples": args.resamples}), flush=True)


if __name__ == "__main__":
    script_entry(main)
