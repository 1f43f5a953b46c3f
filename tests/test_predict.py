"""`prune-cli predict`: GLUE leaderboard files from finished runs, and dev predictions that give
back the run's own metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from conftest import FIXTURE_GLUE, assert_one_line_error, read_metrics, run_cli, tiny_overrides

from prune_cli import data, rundir
from prune_cli.config import compose
from prune_cli.errors import UserError
from prune_cli.metrics import task_metrics


# A tiny random model that trains a few steps answers one class for every input, which would let a
# file in the wrong row order pass; its [CLS] vector barely moves between inputs, so these runs read
# the mean of the tokens, with a head that learns fast enough to answer differently per input.
VARIED = ("head.pooling=mean", "head.lr=1e-2")


def _run(in_tmp: Path, tiny_model_dir: Path, task: str, name: str, *extra: str) -> Path:
    result = run_cli("adapt", "--task", task, *tiny_overrides(tiny_model_dir, *VARIED, *extra, steps=24), f"hydra.run.dir={name}")
    assert result.exit_code == 0, result.output
    return in_tmp / name


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _test_ids(path: Path, column: str) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row[column] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


@pytest.mark.parametrize(("task", "extra"), [("sst2", ()), ("stsb", ()), ("mnli", ("data.max_eval_samples=7",)),
                                           ("mrpc", ("--method", "finetune")), ("cola", ("--method", "imp"))])
def test_dev_predictions_give_back_the_runs_metrics(in_tmp: Path, tiny_model_dir: Path, task: str, extra: tuple[str, ...]):
    """The dev file holds the predictions the run was scored on: recomputing GLUE's metrics from its
    prediction and label columns gives metrics.json's figures (MNLI: both dev sets, cut as the run was)."""
    run_dir = _run(in_tmp, tiny_model_dir, task, "run", *extra)
    stored = read_metrics(run_dir)["metrics"]
    result = run_cli("predict", str(run_dir), "--split", "dev", "--out", str(in_tmp / "preds"))
    assert result.exit_code == 0, result.output
    layout = dict(rundir.load_config(run_dir).task)
    files = {"dev": in_tmp / "preds" / f"{layout['glue_dir']}-dev.tsv"}
    if task == "mnli":
        files["mm"] = in_tmp / "preds" / "MNLI-mm-dev.tsv"
    assert sorted(p.name for p in (in_tmp / "preds").iterdir()) == sorted(p.name for p in files.values())
    for split, path in files.items():
        rows = _read(path)
        assert [r["index"] for r in rows] == [str(i) for i in range(len(rows))]
        if layout["labels"] is None:
            predictions = np.array([np.float32(r["prediction"]) for r in rows])
            labels = np.array([np.float32(r["label"]) for r in rows])
        else:
            names = list(layout["labels"])
            predictions = np.array([names.index(r["prediction"]) for r in rows])
            labels = np.array([names.index(r["label"]) for r in rows])
        if task != "mnli":  # its 7 rows need not show two answers
            assert len(set(predictions.tolist())) > 1, "VARIED makes the answers depend on the input"
        suffix = "" if split == "dev" else f"_{split}"
        recomputed = {f"eval_{k}{suffix}": v for k, v in task_metrics(layout["metrics"], predictions, labels).items()}
        assert recomputed == pytest.approx({k: stored[k] for k in recomputed}, abs=1e-9)
        if task == "mnli":
            assert len(rows) == 7, "cut at data.max_eval_samples, as the run was scored"


def test_a_glue_submission_folder_from_several_runs(in_tmp: Path, tiny_model_dir: Path):
    """One folder, one file per GLUE test set, named as the leaderboard wants, keyed by the test
    files' own ids; MNLI's run also answers AX, GLUE's diagnostic set."""
    runs = [_run(in_tmp, tiny_model_dir, task, task) for task in ("sst2", "stsb", "mnli", "qqp")]
    out = in_tmp / "submission"
    result = run_cli("predict", *map(str, runs), "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = {
        "SST-2.tsv": (FIXTURE_GLUE / "SST-2" / "test.tsv", "index"),
        "STS-B.tsv": (FIXTURE_GLUE / "STS-B" / "test.tsv", "index"),
        "MNLI-m.tsv": (FIXTURE_GLUE / "MNLI" / "test_matched.tsv", "index"),
        "MNLI-mm.tsv": (FIXTURE_GLUE / "MNLI" / "test_mismatched.tsv", "index"),
        "AX.tsv": (FIXTURE_GLUE / "diagnostic" / "diagnostic.tsv", "index"),
        "QQP.tsv": (FIXTURE_GLUE / "QQP" / "test.tsv", "id"),
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, (source, id_column) in expected.items():
        rows = _read(out / name)
        assert list(rows[0]) == ["index", "prediction"]
        assert [r["index"] for r in rows] == _test_ids(source, id_column)
        if name == "STS-B.tsv":
            assert all(np.isfinite(float(r["prediction"])) for r in rows)
        else:
            allowed = {"0", "1"} if name in ("SST-2.tsv", "QQP.tsv") else {"entailment", "neutral", "contradiction"}
            assert {r["prediction"] for r in rows} <= allowed
    assert "prediction files" in result.output


def test_test_predictions_are_those_of_the_runs_model(in_tmp: Path, tiny_model_dir: Path):
    """The leaderboard file's answers are the run's own model's (TaskBank, the Python API), row for row."""
    from prune_cli.api import TaskBank

    run_dir = _run(in_tmp, tiny_model_dir, "mrpc", "run")
    assert run_cli("predict", str(run_dir), "--out", str(in_tmp / "preds")).exit_code == 0
    with (FIXTURE_GLUE / "MRPC" / "test.tsv").open(encoding="utf-8-sig", newline="") as handle:
        pairs = [(r["#1 String"], r["#2 String"]) for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    bank = TaskBank(device="cpu")
    bank.add(run_dir)
    answers = [r["prediction"] for r in _read(in_tmp / "preds" / "MRPC.tsv")]
    assert len(set(answers)) > 1 and answers == bank.predict("mrpc", pairs)


def test_no_file_is_ever_overwritten(in_tmp: Path, tiny_model_dir: Path):
    first, second = _run(in_tmp, tiny_model_dir, "sst2", "a"), _run(in_tmp, tiny_model_dir, "sst2", "b", "seed=2")
    out = in_tmp / "preds"
    assert run_cli("predict", str(first), "--out", str(out)).exit_code == 0
    before = (out / "SST-2.tsv").read_bytes()
    assert_one_line_error(run_cli("predict", str(second), "--out", str(out)), "SST-2.tsv already exists", "never overwriting")
    assert_one_line_error(run_cli("predict", str(first), str(second), "--out", str(in_tmp / "other")),
                          "would both write", "SST-2.tsv")
    assert (out / "SST-2.tsv").read_bytes() == before
    assert not (in_tmp / "other").exists(), "refused before anything was written"
    (in_tmp / "a-file").write_text("mine")
    result = run_cli("predict", str(first), "--out", str(in_tmp / "a-file"), "--data-dir", str(in_tmp / "no-glue"))
    assert_one_line_error(result, f"--out {in_tmp / 'a-file'} is a file; give a folder")  # named before any data is read
    assert (in_tmp / "a-file").read_text() == "mine"


def test_missing_test_file_and_unknown_split(in_tmp: Path, tiny_model_dir: Path, tmp_path_factory):
    """Every run's data is read before any file is written: the second run's missing test file
    leaves no half submission (the first run's SST-2.tsv) behind."""
    runs = [_run(in_tmp, tiny_model_dir, task, task) for task in ("sst2", "cola")]
    glue = tmp_path_factory.mktemp("glue")
    for folder, names in (("SST-2", ("train.tsv", "dev.tsv", "test.tsv")), ("CoLA", ("train.tsv", "dev.tsv"))):
        (glue / folder).mkdir()
        for name in names:
            (glue / folder / name).write_bytes((FIXTURE_GLUE / folder / name).read_bytes())
    result = run_cli("predict", *map(str, runs), "--out", str(in_tmp / "preds"), "--data-dir", str(glue))
    assert_one_line_error(result, f"missing test file {glue / 'CoLA' / 'test.tsv'}", "--split dev")
    assert not (in_tmp / "preds").exists()
    assert_one_line_error(run_cli("predict", str(runs[0]), "--out", str(in_tmp / "preds"), "--split", "train"),
                          "--split 'train' is not known")
    assert not (in_tmp / "preds").exists()


def test_a_run_made_before_predict_existed(in_tmp: Path, tiny_model_dir: Path):
    """Older run dirs have no task.test in their stored config: the packaged task's layout is used."""
    run_dir = _run(in_tmp, tiny_model_dir, "cola", "run")
    config = run_dir / rundir.CONFIG
    stored = config.read_text()
    start = stored.index("  test:\n")
    end = stored.index("  labels:", start)
    config.write_text(stored[:start] + stored[end:])
    assert "test" not in rundir.load_config(run_dir).task
    result = run_cli("predict", str(run_dir), "--out", str(in_tmp / "preds"))
    assert result.exit_code == 0, result.output
    assert len(_read(in_tmp / "preds" / "CoLA.tsv")) == len(_test_ids(FIXTURE_GLUE / "CoLA" / "test.tsv", "index"))


def test_a_task_without_a_test_split():
    task = {"name": "mytask", "glue_dir": "MY", "test": None}
    with pytest.raises(UserError, match="has no test split configured .* --split dev"):
        data.load_test_splits(task, {"dir": str(FIXTURE_GLUE)})


def test_every_shipped_task_reads_its_test_files():
    """Each task's test: block matches its fixture files (GLUE's own layouts)."""
    for name in ("sst2", "cola", "mrpc", "stsb", "qqp", "qnli", "rte", "mnli"):
        task = OmegaConf.to_container(compose([f"task={name}"]).task, resolve=True)
        splits = data.load_test_splits(task, {"dir": str(FIXTURE_GLUE)})
        assert set(splits) == set(task["test"]["files"])
        for split in splits.values():
            assert len(split.ids) == len(split.texts) > 0
            assert all(len(t) == len(task["tsv"]["text_columns"]) and all(t) for t in split.texts)


def test_hub_test_splits(monkeypatch: pytest.MonkeyPatch):
    """Without a local folder, test sets come from the hub, keyed by its idx column; AX is its own config."""
    import datasets

    calls = []

    def fake_load_dataset(path: str, name: str):
        calls.append((path, name))
        split = lambda n: datasets.Dataset.from_dict(  # noqa: E731
            {"premise": ["a cat sits ."] * n, "hypothesis": ["a cat ."] * n, "label": [-1] * n, "idx": list(range(10, 10 + n))}
        )
        if name == "ax":
            return datasets.DatasetDict(test=split(2))
        return datasets.DatasetDict(train=split(6), test_matched=split(3), test_mismatched=split(4))

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = OmegaConf.to_container(compose(["task=mnli"]).task, resolve=True)
    splits = data.load_test_splits(task, {"dir": None})
    assert calls == [("nyu-mll/glue", "mnli"), ("nyu-mll/glue", "ax")]
    assert {k: len(v.ids) for k, v in splits.items()} == {"MNLI-m": 3, "MNLI-mm": 4, "AX": 2}
    assert splits["AX"].ids == ["10", "11"] and splits["AX"].texts[0] == ("a cat sits .", "a cat .")
    assert splits["AX"].source == "nyu-mll/glue/ax:test"


def test_a_user_task_with_only_local_or_only_hub_test_files(monkeypatch: pytest.MonkeyPatch):
    """A task file may give its test sets as local files only (hub: null) or hub splits only; each
    missing source is a one-line error that says where to point instead of a KeyError."""
    monkeypatch.delenv("GLUE_DIR", raising=False)
    local_only = {"name": "mytask", "glue_dir": "SST-2", "hub": None,
                  "test": {"text_columns": ["sentence"], "index_column": "index", "files": {"MINE": "test.tsv"}}}
    assert list(data.load_test_splits(local_only, {"dir": str(FIXTURE_GLUE)})) == ["MINE"]
    with pytest.raises(UserError, match=r"no hub test splits .* point data.dir=\.\.\. \(adapt\), --data-dir \(evaluate, predict, export --check, analyze sensitivity\) or \$GLUE_DIR at"):
        data.load_test_splits(local_only, {"dir": None})
    hub_only = {"name": "mytask", "glue_dir": "SST-2", "hub": {"config": "sst2", "text_columns": ["sentence"]},
                "test": {"text_columns": ["sentence"], "index_column": "index", "hub_splits": {"MINE": "test"}}}
    assert data.unlabelled_names(hub_only) == ["MINE"]
    with pytest.raises(UserError, match="names no local test files .* from the hub"):
        data.load_test_splits(hub_only, {"dir": str(FIXTURE_GLUE)})


def test_predict_keeps_to_the_runs_thread_count_as_evaluate_does(in_tmp: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A run made with `trainer.num_threads` (a lane sharing a machine) keeps to it when it is
    re-scored or predicts, not only while it trains."""
    import torch

    run_dir = _run(in_tmp, tiny_model_dir, "sst2", "run", "trainer.num_threads=2")
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    assert run_cli("evaluate", str(run_dir)).exit_code == 0
    assert asked == [2]
    result = run_cli("predict", str(run_dir), "--split", "dev", "--out", str(in_tmp / "preds"))
    assert result.exit_code == 0, result.output
    assert asked == [2, 2]
