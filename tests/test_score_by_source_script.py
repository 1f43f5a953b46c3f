"""scripts/score_by_source.py: the per-source figures docs/results.md quotes for STS-B's held-out rows."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_GLUE, load_script, only_run_dir, read_metrics, run_cli, tiny_overrides
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from prune_cli.predictions import predict_runs


def _glue_with_two_sources(tmp_path: Path, column: int = 1, even: str = "main-captions", odd: str = "main-news") -> Path:
    """The fixture GLUE folder, with STS-B's dev rows alternating between two values of one column
    (by default the genre: captions, then news)."""
    glue = tmp_path / "glue"
    shutil.copytree(FIXTURE_GLUE, glue)
    dev = glue / "STS-B" / "dev.tsv"
    header, *rows = dev.read_text().splitlines()
    fields = [row.split("\t") for row in rows]
    for i, row in enumerate(fields):
        row[column] = odd if i % 2 else even
    dev.write_text("\n".join([header, *("\t".join(row) for row in fields)]) + "\n")
    return glue


def test_each_source_is_scored_on_its_own_rows_of_the_runs_own_predictions(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    glue = _glue_with_two_sources(tmp_path)
    result = run_cli("adapt", "--task", "stsb", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=12))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    script = load_script("score_by_source")
    figures = script.by_source(run, "genre")
    assert figures["all"] == pytest.approx(read_metrics(run)["main_metric_value"], abs=1e-4)
    assert figures["rows"] == {"main-captions": 6, "main-news": 6} and figures["scored_on"] == "dev"
    assert "answer_shares" not in figures and set(figures["all_metrics"]["main-news"]) == {"pearson", "spearmanr"}  # a regression

    (written,) = predict_runs([run], tmp_path / "rows", split="dev")
    with written.path.open(newline="") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    predicted, gold = (np.array([float(r[k]) for r in table]) for k in ("prediction", "label"))
    for source, rows in (("main-captions", slice(0, None, 2)), ("main-news", slice(1, None, 2))):
        assert figures["by_source"][source] == pytest.approx(round(spearmanr(predicted[rows], gold[rows])[0], 4), abs=1e-4)
    print(json.dumps(figures))


def test_a_run_whose_rows_do_not_predict_to_its_own_score_stops_the_script(in_tmp: Path, tiny_model_dir: Path):
    result = run_cli("adapt", "--task", "stsb", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, steps=6))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    metrics = read_metrics(run)
    (run / "metrics.json").write_text(json.dumps({**metrics, "main_metric_value": metrics["main_metric_value"] + 0.01}))
    with pytest.raises(SystemExit, match="not metrics.json's"):
        load_script("score_by_source").by_source(run, "genre")


def test_a_classification_run_held_out_of_mnli_is_scored_per_genre_and_two_dev_sets_are_refused(in_tmp: Path, tiny_model_dir: Path):
    """MNLI's held-out rows come from its training split, whose genres the script reads; a run scored on both dev
    sets would need two tables, and is refused in a sentence."""
    script = load_script("score_by_source")
    held = run_cli("adapt", "--task", "mnli", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, "data.holdout=8"), "hydra.run.dir=held")
    assert held.exit_code == 0, held.output
    figures = script.by_source(in_tmp / "held", "genre")
    assert figures["scored_on"] == "holdout" and sum(figures["rows"].values()) == 8 and "?" not in figures["rows"]
    assert figures["all"] == pytest.approx(read_metrics(in_tmp / "held")["main_metric_value"], abs=1e-4)
    assert set(figures["by_source"]) == set(figures["rows"])
    both = run_cli("adapt", "--task", "mnli", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir), "hydra.run.dir=both")
    assert both.exit_code == 0, both.output
    with pytest.raises(SystemExit, match="scored on 2 splits"):
        script.by_source(in_tmp / "both", "genre")


def test_in_train_scores_the_rows_of_sources_the_training_split_holds_apart_from_the_rest(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """The fixture's training split is all MSRvid; half the dev rows are relabelled as a file it lacks."""
    glue = _glue_with_two_sources(tmp_path, column=2, even="MSRvid", odd="answers-forums")
    result = run_cli("adapt", "--task", "stsb", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=12))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    script = load_script("score_by_source")
    by_file = script.by_source(run, "filename")
    grouped = script.by_source(run, "filename", in_train=True)
    assert by_file["rows"] == {"MSRvid": 6, "answers-forums": 6} and by_file["column"] == "filename"
    assert grouped["rows"] == {"in-train": 6, "not-in-train": 6} and grouped["in_train"] is True
    assert grouped["by_source"] == {"in-train": by_file["by_source"]["MSRvid"], "not-in-train": by_file["by_source"]["answers-forums"]}
    assert grouped["all"] == by_file["all"]


def test_many_runs_of_one_task_read_its_files_for_the_sources_once(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The source of every row comes from the task's train and dev files, which for MNLI hold 393k
    rows: scoring several runs (here the same run three times) reads them once per column."""
    glue = _glue_with_two_sources(tmp_path)
    result = run_cli("adapt", "--task", "stsb", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=12))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    script = load_script("score_by_source")
    read = script.data.read_glue_tsv
    source_reads: list[tuple[str, str]] = []

    def counting_read(path: Path, task: dict):
        if len(task["tsv"]["text_columns"]) == 3:  # the two sentences and the source column
            source_reads.append((path.name, task["tsv"]["text_columns"][-1]))
        return read(path, task)

    monkeypatch.setattr(script.data, "read_glue_tsv", counting_read)
    first = script.by_source(run, "genre")
    assert [script.by_source(run, "genre") for _ in range(2)] == [first, first]
    script.by_source(run, "filename")
    assert source_reads == [("train.tsv", "genre"), ("dev.tsv", "genre"), ("train.tsv", "filename"), ("dev.tsv", "filename")]


def test_seen_in_scores_the_rows_with_a_sentence_of_another_tasks_training_split_apart(in_tmp: Path, tiny_model_dir: Path, tmp_path: Path):
    """STS-B's training split here holds, as its first pairs' first sentences, the first three MRPC
    dev pairs' first sentences, written in other case and without GLUE's stray quote, and no other
    MRPC sentence: those three pairs form one group, the other nine the other, each scored on the
    run's own predictions."""
    glue = tmp_path / "glue"
    shutil.copytree(FIXTURE_GLUE, glue)
    mrpc_dev = [row.split("\t") for row in (glue / "MRPC" / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[1:]]
    train = glue / "STS-B" / "train.tsv"
    header, *rows = train.read_text().splitlines()
    fields = [row.split("\t") for row in rows]
    for i, row in enumerate(fields):  # pairs of their own, but for the three planted sentences
        row[7], row[8] = f"sts pair {i} first", f"sts pair {i} second"
    for i in range(3):
        fields[i][7] = mrpc_dev[i][3].strip('"').upper()
    train.write_text("\n".join([header, *("\t".join(row) for row in fields)]) + "\n")
    result = run_cli("adapt", "--task", "mrpc", "--sparsity", "0.5", *tiny_overrides(tiny_model_dir, f"data.dir={glue}", steps=12))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    script = load_script("score_by_source")
    figures = script.by_source(run, None, seen_in="stsb")
    seen, unseen = "seen in stsb train", "unseen in stsb train"
    assert figures["rows"] == {seen: 3, unseen: len(mrpc_dev) - 3} and figures["seen_in"] == "stsb"

    (written,) = predict_runs([run], tmp_path / "rows", split="dev")
    with written.path.open(newline="") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    predicted, gold = (np.array([int(r[k]) for r in table]) for k in ("prediction", "label"))
    for group, rows in ((seen, slice(0, 3)), (unseen, slice(3, None))):
        assert figures["by_source"][group] == pytest.approx(round(f1_score(gold[rows], predicted[rows], zero_division=0.0), 4), abs=1e-4)
        assert figures["all_metrics"][group]["f1"] == figures["by_source"][group]
        assert figures["all_metrics"][group]["accuracy"] == pytest.approx(np.mean(gold[rows] == predicted[rows]), abs=1e-4)
        shares = figures["answer_shares"][group]
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3) and shares.get("1", 0.0) == pytest.approx(np.mean(predicted[rows] == 1), abs=1e-4)
    assert not script.by_source(run, None)["by_source"].keys() - {""}, "without --seen-in the rows stay one group"
