"""Two sets of runs against each other within each source, paired by seed, from the per-source lines
`scripts/score_by_source.py` printed.

    python scripts/pair_by_source.py docs/results/holdout/stsb_by_filename.jsonl \
        outputs/dev-by-source/stsb/adapt_by_pruning/s0.5 outputs/dev-by-source/stsb/finetune/s0.0

Why: docs/results.md reads STS-B's gap between ours and fine-tuning source by source (captions,
news, forums; or file by file), and the per-source scores need masks the repository does not keep,
so they are published as JSON lines. This prints the comparison those lines give, as a Markdown
table: each side's mean per source over the seeds both sides have, the mean of (first − second) ×
100 with each seed's difference, and on how many seeds the first side is ahead. Each side is the
folder that holds its runs' `seed<N>` folders, as the lines name them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from prune_cli.errors import UserError, first_line, script_entry
from prune_cli.report import paired_gap

WHOLE = "all"  # the row for the whole scored split


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of `path`, each checked to be one of score_by_source.py's: a run's folder, its
    seed, its rows and score per source (the same sources), and its whole-split score. A file that is
    missing, not JSON lines, or another script's output is named in one line, with the line that is
    not one, where json's or a KeyError's traceback named neither."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 text
        raise UserError(f"{path} cannot be read: {first_line(exc)}") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise UserError(f"{path}:{number}: not a JSON line ({first_line(exc)})") from None
        if not (isinstance(line, dict) and isinstance(line.get("run"), str) and isinstance(line.get("seed"), int)
                and isinstance(line.get("rows"), dict) and isinstance(line.get("by_source"), dict)
                and set(line["rows"]) == set(line["by_source"]) and isinstance(line.get("all"), (int, float))):
            raise UserError(f"{path}:{number}: not a line of scripts/score_by_source.py's output (run, seed, rows and "
                            "by_source with the same sources, all)")
        lines.append(line)
    return lines


def side_lines(lines: list[dict], folder: str) -> dict[int, dict]:
    """{seed: its line} of the runs directly under `folder`."""
    found = {line["seed"]: line for line in lines if Path(line["run"]).parent == Path(folder)}
    if not found:
        raise SystemExit(f"no lines for runs under {folder}")
    return found


def scores(line: dict) -> dict[str, float]:
    """The line's score per source, and the whole split's under WHOLE."""
    return {**line["by_source"], WHOLE: line["all"]}


def paired_table(lines: list[dict], first: str, second: str) -> list[str]:
    """Markdown rows: source, rows, each side's mean, first − second in points per seed, seeds ahead."""
    a, b = side_lines(lines, first), side_lines(lines, second)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f"{first} and {second} share no seed")
    if any(a[s]["rows"] != b[s]["rows"] for s in seeds):
        raise SystemExit("the two sides were scored on different rows; pair runs scored on the same split")
    sources = [*a[seeds[0]]["rows"], WHOLE]
    header = ["| source | rows | first | second | first − second, points (seeds " + ", ".join(map(str, seeds)) + ") | first ahead on |",
              "|---|---|---|---|---|---|"]
    rows = []
    for source in sources:
        first_scores = {s: scores(a[s])[source] for s in seeds}
        second_scores = {s: scores(b[s])[source] for s in seeds}
        gap = paired_gap(first_scores, second_scores)
        count = sum(a[seeds[0]]["rows"].values()) if source == WHOLE else a[seeds[0]]["rows"][source]
        rows.append(f"| {source} | {count} | {statistics.mean(first_scores.values()):.4f} | {statistics.mean(second_scores.values()):.4f} | "
                    f"{gap.mean:+.2f} ({gap.per_seed()}) | {gap.ahead} of {len(gap.seeds)} |")
    return header + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", type=Path, help="a JSON-lines file of scripts/score_by_source.py's output")
    parser.add_argument("first", help="the folder of the first side's seed<N> runs, as the lines name it")
    parser.add_argument("second", help="the folder of the second side's")
    args = parser.parse_args()
    lines = read_lines(args.lines)
    print(f"first: {args.first}\nsecond: {args.second}\n")
    print("\n".join(paired_table(lines, args.first, args.second)))


if __name__ == "__main__":
    script_entry(main)
