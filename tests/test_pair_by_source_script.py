"""scripts/pair_by_source.py: the per-source gaps docs/results.md quotes, read from score_by_source.py's lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pair_by_source.py"
ROWS = {"MSRvid": 4, "answers-forums": 2}


def line(folder: str, seed: int, whole: float, msrvid: float, forums: float, rows: dict | None = None) -> str:
    return json.dumps({"run": f"{folder}/seed{seed}", "seed": seed, "all": whole, "rows": rows or ROWS,
                       "by_source": {"MSRvid": msrvid, "answers-forums": forums}})


def pair(tmp_path: Path, lines: list[str], first: str = "out/ours", second: str = "out/ft") -> subprocess.CompletedProcess:
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, str(SCRIPT), str(path), first, second], capture_output=True, text=True)


def test_each_source_is_paired_by_seed_over_the_seeds_both_sides_have(tmp_path: Path):
    result = pair(tmp_path, [
        line("out/ours", 1, 0.80, 0.90, 0.70), line("out/ours", 2, 0.84, 0.88, 0.66), line("out/ours", 3, 0.5, 0.5, 0.5),
        line("out/ft", 2, 0.83, 0.92, 0.60), line("out/ft", 1, 0.82, 0.91, 0.62),
        line("out/ours-other", 1, 0.1, 0.1, 0.1),  # a sibling folder, not a side
    ])
    assert result.returncode == 0, result.stderr
    table = {row.split(" | ")[0].strip("| "): row for row in result.stdout.splitlines() if row.startswith("| ")}
    assert "(seeds 1, 2)" in table["source"]
    assert table["MSRvid"] == "| MSRvid | 4 | 0.8900 | 0.9150 | -2.50 (-1.00, -4.00) | 0 of 2 |"
    assert table["answers-forums"] == "| answers-forums | 2 | 0.6800 | 0.6100 | +7.00 (+8.00, +6.00) | 2 of 2 |"
    assert table["all"] == "| all | 6 | 0.8200 | 0.8250 | -0.50 (-2.00, +1.00) | 1 of 2 |"


def test_sides_without_lines_or_a_shared_seed_or_on_other_rows_are_refused_in_a_sentence(tmp_path: Path):
    missing = pair(tmp_path, [line("out/ours", 1, 0.8, 0.9, 0.7)])
    assert missing.returncode != 0 and "no lines for runs under out/ft" in missing.stderr
    disjoint = pair(tmp_path, [line("out/ours", 1, 0.8, 0.9, 0.7), line("out/ft", 2, 0.8, 0.9, 0.7)])
    assert disjoint.returncode != 0 and "share no seed" in disjoint.stderr
    other_rows = pair(tmp_path, [line("out/ours", 1, 0.8, 0.9, 0.7), line("out/ft", 1, 0.8, 0.9, 0.7, rows={"MSRvid": 6, "answers-forums": 2})])
    assert other_rows.returncode != 0 and "different rows" in other_rows.stderr
    for result in (missing, disjoint, other_rows):
        assert "Traceback" not in result.stderr


def test_a_file_that_is_not_score_by_sources_lines_is_named_in_one_line(tmp_path: Path):
    """A missing file, a line that is not JSON and a line of another shape were tracebacks
    (FileNotFoundError, JSONDecodeError, KeyError) that named no line."""
    missing = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.jsonl"), "out/ours", "out/ft"], capture_output=True, text=True)
    assert missing.returncode == 1 and f"error: {tmp_path / 'none.jsonl'} cannot be read: " in missing.stderr
    good = line("out/ours", 1, 0.8, 0.9, 0.7)
    without_source = json.dumps({**json.loads(good), "by_source": {"MSRvid": 0.9}})
    for bad, message in (("{not json", "2: not a JSON line ("), ('{"run": "out/ft/seed1"}', "2: not a line of scripts/score_by_source.py's output"),
                         ("[1, 2]", "2: not a line of"), (without_source, "2: not a line of")):
        result = pair(tmp_path, [good, bad, line("out/ft", 1, 0.8, 0.9, 0.7)])
        assert result.returncode == 1 and f"error: {tmp_path / 'lines.jsonl'}:{message}" in result.stderr, result.stderr
    for result in (missing, result):
        assert "Traceback" not in result.stderr
