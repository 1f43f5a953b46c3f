"""The results the docs quote are what `prune-cli report` makes of the runs kept in the repository.

Every figure in docs/results.md is read from docs/results/report.md, which `collect_results.sh`
writes from docs/results/runs. A report edited by hand, or runs added without regenerating it, would
make the docs quote numbers no script produces; this rebuilds both files and compares them.
"""

from __future__ import annotations

from pathlib import Path

from prune_cli import report

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def test_published_report_is_rebuilt_exactly_from_the_published_runs(tmp_path: Path):
    report.build(RESULTS / "runs", out_dir=tmp_path)
    for name in ("report.md", "report.csv"):
        assert (tmp_path / name).read_text() == (RESULTS / name).read_text(), (
            f"docs/results/{name} differs from what `prune-cli report docs/results/runs` writes; "
            "regenerate it with scripts/collect_results.sh")
