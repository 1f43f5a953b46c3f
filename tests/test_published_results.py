"""The results the docs quote are what `prune-cli report` makes of the runs kept in the repository.

Every figure in docs/results.md is read from docs/results/report.md, which `collect_results.sh`
writes from docs/results/runs. A report edited by hand, or runs added without regenerating it, would
make the docs quote numbers no script produces; this rebuilds both files and compares them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prune_cli import report

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("published", [RESULTS, RESULTS / "holdout"], ids=["grid", "holdout"])
def test_published_report_is_rebuilt_exactly_from_the_published_runs(tmp_path: Path, published: Path):
    """The grid's report, and the held-out check's (docs/results/holdout: `collect_results.sh
    outputs/holdout docs/results/holdout`)."""
    report.build(published / "runs", out_dir=tmp_path)
    for name in ("report.md", "report.csv"):
        assert (tmp_path / name).read_text() == (published / name).read_text(), (
            f"{published}/{name} differs from what `prune-cli report {published}/runs` writes; "
            "regenerate it with scripts/collect_results.sh")
