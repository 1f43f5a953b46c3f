"""One recipe against others on the same task and sparsity, seed by seed, over every seed each side has.

    python scripts/compare_seeds.py docs/results/runs --task mrpc --sparsity 0.7 \
        adapt_by_pruning:hold-at-s-paper-theta-lr-s0.7 \
        magnitude+magnitude:magnitude-s0.7-fresh-seeds random+random:random-s0.7-fresh-seeds

Why: `prune-cli report` averages each cell (method and tag) on its own seeds, so a grid cell (seeds
1-3) and the same recipe run again on fresh seeds 4 and 5 under a tag are two rows. When a margin is
smaller than the seed spread, docs/results.md reruns both sides on fresh seeds and reads the
comparison over all five; this prints that reading from the runs themselves. Each side is one cell
or several joined with `+` (the same recipe on disjoint seeds); a cell is METHOD (the untagged grid
runs) or METHOD:TAG. The first side is compared with each of the others, paired by seed: the mean
of (first − other) × 100 over the seeds both have, and on how many of them the first is ahead.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from prune_cli import recipes, report
from prune_cli.errors import UserError, script_entry


def side_values(groups: list[report.Group], side: str, task: str, sparsity: float) -> dict[int, float]:
    """{seed: main metric} of every cell `side` names, at `task` and `sparsity` (0 for the references)."""
    by_seed: dict[int, float] = {}
    for cell in side.split("+"):
        method, _, tag = cell.partition(":")
        at = report.cell_sparsity(method, sparsity)
        match = [g for g in groups if (g.task, g.method, g.sparsity, g.tag) == (task, method, at, tag)]
        if not match:
            raise UserError(f"no finished runs of {cell!r} for {task} at s={sparsity:g}{renamed_hint(groups, method, tag, task, at)}")
        for seed, value in match[0].by_seed().items():
            if seed in by_seed:
                raise UserError(f"seed {seed} appears twice in {side!r}; join cells that ran on different seeds")
            by_seed[seed] = value
    return dict(sorted(by_seed.items()))


def renamed_hint(groups: list[report.Group], method: str, tag: str, task: str, at: float) -> str:
    """Where the runs a missing cell names went: another table, or (runs recorded before a change of the
    default, prune_cli/recipes.py) the same tag under the earlier default's name, or today's default's
    cell, which holds a tag whose overrides only restated it."""
    tables = sorted({g.task for g in groups})
    if task not in tables:
        return f"; the folder's tables are {', '.join(tables)}; pass one as --task"
    here = [g for g in groups if (g.task, g.sparsity) == (task, at)]
    folded = next((g for g in here if tag and tag in dict(g.folded)), None)
    if folded is not None:
        return f"; its runs restate the recipe of {folded.method!r}, which holds them"
    change = recipes.change_of(method)
    other = {change.method, change.earlier} - {method} if change else set()
    renamed = sorted({g.method for g in here if g.tag == tag and g.method in other})
    return f"; runs of that tag are {', '.join(f'{m}:{tag}' if tag else m for m in renamed)}" if renamed else ""


def describe(name: str, values: dict[int, float]) -> str:
    """Mean ± sd and every seed's value: a margin reads differently beside the spread it sits in."""
    spread = statistics.stdev(values.values()) if len(values) > 1 else 0.0
    seeds = ", ".join(f"{seed}: {value:.4f}" for seed, value in values.items())
    return f"{name}: {statistics.fmean(values.values()):.4f} ± {spread:.4f} over {len(values)} seeds ({seeds})"


def compare(first: dict[int, float], other: dict[int, float]) -> str:
    """The paired reading, over shared seeds only: a seed's draw moves both sides together."""
    gap = report.paired_gap(first, other)
    if not gap.seeds:
        return "no seed in common"
    spread = ""
    if gap.standard_error is not None:  # how far the seeds alone move the mean: what a row bootstrap's error is set against
        spread = f"; standard error over seeds {gap.standard_error:.2f} (sd of the paired gaps {gap.sd:.2f})"
    return (f"Δ {gap.mean:+.2f} points over seeds {list(gap.seeds)} ({gap.per_seed()}); "
            f"ahead on {gap.ahead} of {len(gap.seeds)}{spread}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a folder of finished runs (docs/results/runs, outputs/reproduce)")
    parser.add_argument("--task", required=True, help="a table of `prune-cli report`: the task (sst2), or "
                        "<task>@<backbone> in a folder of more than one backbone")
    parser.add_argument("--sparsity", type=float, required=True)
    parser.add_argument("sides", nargs="+", help="the recipe to compare, then the ones to compare it with")
    args = parser.parse_args()
    if len(args.sides) < 2:
        raise UserError("name the recipe to compare and at least one to compare it with")
    groups = report.group_runs(report.collect(args.runs).runs)
    first, *others = (side_values(groups, side, args.task, args.sparsity) for side in args.sides)
    print(describe(args.sides[0], first))
    for side, values in zip(args.sides[1:], others):
        print(describe(side, values))
        print(f"  {args.sides[0]} against it: {compare(first, values)}")


if __name__ == "__main__":
    script_entry(main)
