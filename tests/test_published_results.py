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


RUN_SETS = {"grid": RESULTS, "holdout": RESULTS / "holdout", "dev-by-source": RESULTS / "dev-by-source",
            "holdout-by-file": RESULTS / "holdout-by-file", "sst2-rows": RESULTS / "sst2-rows",
            "transfer-sources": RESULTS / "transfer-sources", "sst2-holdout-rows": RESULTS / "sst2-holdout-rows"}
PER_SOURCE_FILES = [*sorted((RESULTS / "holdout").glob("stsb_by_*.jsonl")), RESULTS / "transfer-sources" / "mrpc_by_seen_in_stsb.jsonl"]
BOOTSTRAP_FILES = sorted((RESULTS / "holdout").glob("*_bootstrap.jsonl"))
# where each runs root the per-source lines name is published: outputs/reproduce as docs/results/runs,
# outputs/holdout as docs/results/holdout/runs, the remade STS-B, SST-2 and MRPC roots under their own names
KEPT = {"outputs/reproduce/": RESULTS / "runs", "outputs/holdout/": RESULTS / "holdout" / "runs",
        "outputs/dev-by-source/": RESULTS / "dev-by-source" / "runs",
        "outputs/holdout-by-file/": RESULTS / "holdout-by-file" / "runs",
        "outputs/sst2-rows/": RESULTS / "sst2-rows" / "runs",
        "outputs/transfer-sources/": RESULTS / "transfer-sources" / "runs",
        "outputs/sst2-holdout-rows/": RESULTS / "sst2-holdout-rows" / "runs"}


@pytest.mark.parametrize("published", RUN_SETS.values(), ids=RUN_SETS.keys())
def test_published_report_is_rebuilt_exactly_from_the_published_runs(tmp_path: Path, published: Path):
    """The grid's report, the held-out check's (docs/results/holdout: `collect_results.sh
    outputs/holdout docs/results/holdout`), those of the STS-B runs remade for their per-source
    scores (docs/results/dev-by-source on dev, docs/results/holdout-by-file on held-out pairs), that
    of the SST-2 runs remade for their row bootstrap (docs/results/sst2-rows on dev,
    docs/results/sst2-holdout-rows on held-out sentences), and that of the MRPC transfer runs with the
    runs they read or are compared with (docs/results/transfer-sources)."""
    report.build(published / "runs", out_dir=tmp_path)
    for name in ("report.md", "report.csv"):
        assert (tmp_path / name).read_text() == (published / name).read_text(), (
            f"{published}/{name} differs from what `prune-cli report {published}/runs` writes; "
            "regenerate it with scripts/collect_results.sh")


def test_the_per_source_files_are_the_four_the_docs_quote():
    assert [p.name for p in PER_SOURCE_FILES] == ["stsb_by_filename.jsonl", "stsb_by_source.jsonl",
                                                                "stsb_by_training_split.jsonl", "mrpc_by_seen_in_stsb.jsonl"]


@pytest.mark.parametrize("per_source", PER_SOURCE_FILES, ids=[p.stem for p in PER_SOURCE_FILES])
def test_each_published_per_source_score_is_of_a_published_run_and_its_whole_split_score_is_that_runs(per_source: Path):
    """docs/results/holdout/stsb_by_*.jsonl (`scripts/score_by_source.py`, by genre, by file, and by whether the
    training split holds the file) need masks the repository does not keep, so they cannot be rebuilt here; what can
    be checked is that each line names a published run (outputs/reproduce is kept as docs/results/runs, outputs/holdout
    as docs/results/holdout/runs, outputs/dev-by-source and outputs/holdout-by-file under their own names in
    docs/results), that its whole-split figure is that run's own metrics.json figure, and that its sources' rows add up
    to the rows the run was scored on."""
    grouping = {"stsb_by_source": ("genre", False, None), "stsb_by_filename": ("filename", False, None),
                "stsb_by_training_split": ("filename", True, None), "mrpc_by_seen_in_stsb": (None, False, "stsb")}[per_source.stem]
    lines = per_source.read_text().splitlines()
    assert lines
    for line in map(json.loads, lines):
        # the first lines predate the column and in_train keys, and all but MRPC's the seen_in key
        assert (line.get("column", "genre"), line.get("in_train", False), line.get("seen_in")) == grouping, line["run"]
        prefix = next(p for p in KEPT if line["run"].startswith(p))
        metrics = json.loads((KEPT[prefix] / line["run"][len(prefix):] / "metrics.json").read_text())
        assert (metrics["tag"], metrics["seed"], metrics["steps"]) == (line["tag"], line["seed"], line["steps"])
        assert round(metrics["main_metric_value"], 4) == line["all"], line["run"]
        assert sum(line["rows"].values()) == metrics["scored_on"][line["scored_on"]]["rows"], line["run"]


def test_the_bootstrap_files_are_the_three_the_docs_quote():
    assert [p.name for p in BOOTSTRAP_FILES] == ["sst2_bootstrap.jsonl", "sst2_holdout_bootstrap.jsonl", "stsb_bootstrap.jsonl"]


@pytest.mark.parametrize("published", BOOTSTRAP_FILES, ids=[p.stem for p in BOOTSTRAP_FILES])
def test_each_published_bootstrap_gap_is_of_published_runs_and_its_whole_split_gap_is_theirs(published: Path):
    """docs/results/holdout/{stsb,sst2,sst2_holdout}_bootstrap.jsonl (`scripts/bootstrap_gap.py`) need masks too; each line must
    name two published run folders with the seeds it paired, and a gap over all rows must be the runs' own
    metrics.json gap."""
    lines = [json.loads(text) for text in published.read_text().splitlines()]
    assert lines

    def own_scores(folder: str) -> dict[int, float]:
        prefix = next(p for p in KEPT if folder.startswith(p))
        runs = [json.loads(r.read_text()) for r in (KEPT[prefix] / folder[len(prefix):]).glob("seed*/metrics.json")]
        return {metrics["seed"]: metrics["main_metric_value"] for metrics in runs}

    for line in lines:
        first, second = own_scores(line["first"]), own_scores(line["second"])
        assert line["seeds"] == sorted(set(first) & set(second)), line
        assert line["ci95"][0] <= line["gap"] <= line["ci95"][1] and line["se"] > 0, line
        if line["source"] == "all":
            assert line["gap"] == pytest.approx(sum(100 * (first[s] - second[s]) for s in line["seeds"]) / len(line["seeds"]), abs=0.01), line
