"""The results the docs quote are what `prune-cli report` makes of the runs kept in the repository.

Every figure in docs/results.md is read from docs/results/report.md, which `collect_results.sh`
writes from docs/results/runs. A report edited by hand, or runs added without regenerating it, would
make the docs quote numbers no script produces; this rebuilds both files and compares them. The per-source
scores (scripts/score_by_source.py) need masks the repository does not keep, so their lines are checked against the
kept runs instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prune_cli import report

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("published", [RESULTS, RESULTS / "holdout", RESULTS / "dev-by-source"],
                         ids=["grid", "holdout", "dev-by-source"])
def test_published_report_is_rebuilt_exactly_from_the_published_runs(tmp_path: Path, published: Path):
    """The grid's report, the held-out check's (docs/results/holdout: `collect_results.sh
    outputs/holdout docs/results/holdout`), and that of the STS-B dev runs remade for their per-source
    scores (docs/results/dev-by-source)."""
    report.build(published / "runs", out_dir=tmp_path)
    for name in ("report.md", "report.csv"):
        assert (tmp_path / name).read_text() == (published / name).read_text(), (
            f"{published}/{name} differs from what `prune-cli report {published}/runs` writes; "
            "regenerate it with scripts/collect_results.sh")


def test_each_published_per_source_score_is_of_a_published_run_and_its_whole_split_score_is_that_runs():
    """docs/results/holdout/stsb_by_source.jsonl (`scripts/score_by_source.py`) needs masks the repository does not
    keep, so it cannot be rebuilt here; what can be checked is that each line names a published run (outputs/reproduce
    is kept as docs/results/runs, outputs/holdout as docs/results/holdout/runs, outputs/dev-by-source as
    docs/results/dev-by-source/runs), that its whole-split figure is that run's own metrics.json figure, and that its
    sources' rows add up to the rows the run was scored on."""
    kept = {"outputs/reproduce/": RESULTS / "runs", "outputs/holdout/": RESULTS / "holdout" / "runs",
            "outputs/dev-by-source/": RESULTS / "dev-by-source" / "runs"}
    lines = (RESULTS / "holdout" / "stsb_by_source.jsonl").read_text().splitlines()
    assert lines
    for line in map(json.loads, lines):
        prefix = next(p for p in kept if line["run"].startswith(p))
        metrics = json.loads((kept[prefix] / line["run"][len(prefix):] / "metrics.json").read_text())
        assert (metrics["tag"], metrics["seed"], metrics["steps"]) == (line["tag"], line["seed"], line["steps"])
        assert round(metrics["main_metric_value"], 4) == line["all"], line["run"]
        assert sum(line["rows"].values()) == metrics["scored_on"][line["scored_on"]]["rows"], line["run"]
