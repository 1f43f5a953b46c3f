"""Every GLUE task format reads correctly from TSV (traps included) and from the hub path."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURE_GLUE
from omegaconf import OmegaConf

from prune_cli import data
from prune_cli.config import CONFIG_DIR, group_options
from prune_cli.errors import UserError


def task_cfg(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "task" / f"{name}.yaml"))


@pytest.mark.parametrize("name", group_options("task"))
def test_every_task_reads_from_glue_tsvs(name: str):
    task = task_cfg(name)
    loaded = data.load_task_data(task, {"dir": str(FIXTURE_GLUE)})
    assert len(loaded.train) == 24
    assert set(loaded.dev) == set(task["tsv"]["dev_files"])
    width = len(task["tsv"]["text_columns"])
    for split in [loaded.train, *loaded.dev.values()]:
        assert all(len(t) == width and all(s.strip() for s in t) for t in split.texts)
        if task["labels"] is None:
            assert all(isinstance(y, float) and 0 <= y <= 5 for y in split.labels)
        else:
            assert set(split.labels) == set(range(len(task["labels"])))


def test_mnli_has_matched_and_mismatched_dev_sets():
    loaded = data.load_task_data(task_cfg("mnli"), {"dir": str(FIXTURE_GLUE)})
    assert (len(loaded.dev["dev"]), len(loaded.dev["mm"])) == (12, 9)


def test_format_traps_are_handled():
    mrpc = data.read_glue_tsv(FIXTURE_GLUE / "MRPC" / "train.tsv", task_cfg("mrpc"))  # BOM header
    assert mrpc.texts[0][0].startswith('"')  # unbalanced quote kept verbatim, row not merged
    cola_dev = data.read_glue_tsv(FIXTURE_GLUE / "CoLA" / "dev.tsv", task_cfg("cola"))  # no header/newline
    assert len(cola_dev) == 12 and cola_dev.texts[0][0].startswith("the ")


def test_real_shared_glue_counts_when_present():
    shared = Path(__file__).resolve().parents[2] / "shared" / "glue"
    if not shared.is_dir():
        pytest.skip(f"{shared} not present")
    counts = {"sst2": (67349, 872), "cola": (8551, 1043), "mrpc": (3668, 408), "stsb": (5749, 1500)}
    for name, (n_train, n_dev) in counts.items():
        loaded = data.load_task_data(task_cfg(name), {"dir": str(shared)})
        assert (len(loaded.train), len(loaded.dev["dev"])) == (n_train, n_dev), name


def test_malformed_row_names_file_and_line(tmp_path: Path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nno label here\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    with pytest.raises(UserError, match=r"train.tsv:3: malformed row"):
        data.load_task_data(task_cfg("sst2"), {"dir": str(tmp_path)})


def test_unknown_label_names_file_and_line(tmp_path: Path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\ngood film\t7\n")
    with pytest.raises(UserError, match=r"train.tsv:2: label '7' is not one of"):
        data.read_glue_tsv(folder / "train.tsv", task_cfg("sst2"))


@pytest.mark.parametrize("score", ["nan", "inf", "-Infinity"])
def test_a_score_that_is_not_finite_names_file_and_line(tmp_path: Path, score: str):
    """float() reads 'nan' and 'inf'; one such STS-B score made every training loss nan."""
    folder = tmp_path / "STS-B"
    folder.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    (folder / "train.tsv").write_text(header + "0\tx\tx\tx\tx\tx\tx\ta man\ta man\t4.5\n" + f"1\tx\tx\tx\tx\tx\tx\ta dog\ta cat\t{score}\n")
    with pytest.raises(UserError, match=rf"train.tsv:3: label '{score}' is not a finite number$"):
        data.read_glue_tsv(folder / "train.tsv", task_cfg("stsb"))


def test_a_hub_score_that_is_not_finite_names_its_row(monkeypatch: pytest.MonkeyPatch):
    import datasets

    def fake_load_dataset(path: str, name: str):
        split = lambda scores: datasets.Dataset.from_dict(  # noqa: E731
            {"sentence1": ["a man ."] * len(scores), "sentence2": ["a dog ."] * len(scores), "label": scores, "idx": list(range(len(scores)))})
        return datasets.DatasetDict(train=split([1.0, float("nan"), 2.0]), validation=split([3.0]))

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(UserError, match=r"row 1's label in 'label' is nan, not a finite number$"):
        data.load_task_data(task_cfg("stsb"), {"dir": None})


def test_empty_training_set_is_an_error(tmp_path: Path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    with pytest.raises(UserError, match="has no examples"):
        data.load_task_data(task_cfg("sst2"), {"dir": str(tmp_path)})


def _copy_of_fixture(tmp_path: Path, folder: str) -> Path:
    shutil.copytree(FIXTURE_GLUE / folder, tmp_path / folder)
    return tmp_path / folder


@pytest.mark.parametrize(("task", "file", "named"), [("sst2", "dev.tsv", "the dev set"), ("mnli", "dev_mismatched.tsv", "the dev set 'mm'")])
def test_a_dev_set_without_rows_is_an_error_naming_it(tmp_path: Path, task: str, file: str, named: str):
    """A dev file holding only its header failed after training, inside the tokenizer (IndexError)."""
    path = _copy_of_fixture(tmp_path, task_cfg(task)["glue_dir"]) / file
    path.write_text(path.read_text().split("\n", 1)[0] + "\n")
    with pytest.raises(UserError, match=rf"^task '{task}': {named} \({re.escape(str(path))}\) has no examples$"):
        data.load_task_data(task_cfg(task), {"dir": str(tmp_path)})
    with pytest.raises(UserError, match=rf"{named} \({re.escape(str(path))}\) has no examples$"):  # re-scoring a run reads no training set
        data.load_task_data(task_cfg(task), {"dir": str(tmp_path)}, with_train=False)


def test_a_test_set_without_rows_is_an_error_naming_it(tmp_path: Path):
    path = _copy_of_fixture(tmp_path, "SST-2") / "test.tsv"
    path.write_text("index\tsentence\n")
    with pytest.raises(UserError, match=rf"^task 'sst2': the test set SST-2 \({re.escape(str(path))}\) has no examples$"):
        data.load_test_splits(task_cfg("sst2"), {"dir": str(tmp_path)})


@pytest.mark.parametrize(("split", "ending"), [("train.tsv", b"\n"), ("dev.tsv", b"\n"), ("test.tsv", b"\n"),
                                              ("train.tsv", b"\r\n"), ("train.tsv", b"\r")], ids=["train", "dev", "test", "CRLF", "CR"])
def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path, split: str, ending: bytes):
    """A byte that is not UTF-8 (a file saved as Latin-1) was a UnicodeDecodeError, whose position
    is in a block of the file, not a line of it; lines are counted as the reader ends them."""
    path = _copy_of_fixture(tmp_path, "SST-2") / split
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b" ", b" caf\xe9 ", 1)
    path.write_bytes(ending.join(lines))
    message = rf"^{re.escape(str(path))}:4: not UTF-8 text \(byte 0xe9: invalid continuation byte\); GLUE's files are UTF-8: save the file as UTF-8$"
    with pytest.raises(UserError, match=message):
        if split == "test.tsv":
            data.load_test_splits(task_cfg("sst2"), {"dir": str(tmp_path)})
        else:
            data.load_task_data(task_cfg("sst2"), {"dir": str(tmp_path)})


def test_missing_task_says_where_it_looked_and_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    with pytest.raises(UserError) as err:
        data.load_task_data(task_cfg("qnli"), {"dir": None})
    message = str(err.value)
    assert str(tmp_path / "QNLI") in message and "data.dir" in message and "GLUE_DIR" in message


def test_data_dir_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    assert data.resolve_glue_dir(str(FIXTURE_GLUE)) == FIXTURE_GLUE
    assert data.resolve_glue_dir(None) == tmp_path
    assert data.resolve_glue_dir("") == tmp_path


def test_a_data_folder_named_by_a_number_is_read(in_tmp: Path, tiny_model_dir: Path):
    """Hydra reads `data.dir=5` as the number 5, which failed in a TypeError traceback."""
    from conftest import tiny_overrides

    from prune_cli.config import compose
    from prune_cli.hydra_entry import plan_adapt

    shutil.copytree(FIXTURE_GLUE / "SST-2", in_tmp / "5" / "SST-2")
    assert data.resolve_glue_dir(5) == in_tmp / "5"
    assert data.resolve_glue_dir(True) == in_tmp / "true", "as typed (data.dir=true), not Python's True"
    overrides = tiny_overrides(tiny_model_dir, "data.dir=5")
    assert compose(overrides).data.dir == 5
    [job] = plan_adapt(overrides, multirun=False).jobs
    assert job.train_rows == 24


def test_folders_named_by_numbers_are_read_from_wherever_the_run_is_read(in_tmp: Path, tiny_model_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """`model.name_or_path=7` is the number 7 to Hydra: it passed the checks and ended the run in a
    traceback (`'int' object has no attribute 'strip'`), after the data was read. `data.dir=5` ran,
    but its readers took the record's "5" as no path to anchor, so `evaluate` from anywhere else
    looked for ./5."""
    from conftest import only_run_dir, run_cli, tiny_overrides

    shutil.copytree(FIXTURE_GLUE / "SST-2", in_tmp / "5" / "SST-2")
    shutil.copytree(tiny_model_dir, in_tmp / "7")
    result = run_cli("adapt", *tiny_overrides(tiny_model_dir, "data.dir=5", "model.name_or_path=7"))
    assert result.exit_code == 0, result.output
    run = only_run_dir(in_tmp / "outputs")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "7", "the record's model is text, as its readers require"
    elsewhere = in_tmp / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checked = run_cli("evaluate", "--check", str(run))
    assert checked.exit_code == 0, checked.output


def test_hub_path_maps_columns_and_splits(monkeypatch: pytest.MonkeyPatch):
    import datasets

    calls = []

    def fake_load_dataset(path: str, name: str):
        calls.append((path, name))
        split = lambda n: datasets.Dataset.from_dict(  # noqa: E731
            {"premise": ["a cat sits ."] * n, "hypothesis": ["a cat ."] * n, "label": [i % 3 for i in range(n)], "idx": list(range(n))}
        )
        return datasets.DatasetDict(train=split(6), validation_matched=split(3), validation_mismatched=split(2))

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = data.load_task_data(task_cfg("mnli"), {"dir": None})
    assert calls == [("nyu-mll/glue", "mnli")]
    assert len(loaded.train) == 6 and loaded.train.texts[0] == ("a cat sits .", "a cat .")
    assert (len(loaded.dev["dev"]), len(loaded.dev["mm"])) == (3, 2)


def test_a_hub_dataset_is_loaded_at_the_revision_the_task_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A dataset can change under its hub id; `task.hub.revision` keeps a run (and every rerun) on the
    same rows. A local folder of files has one version: a revision for it is refused, not ignored."""
    import datasets

    asked = []

    def fake_load_dataset(path: str, name: str, **kwargs):
        asked.append(kwargs.get("revision"))
        split = lambda n: datasets.Dataset.from_dict({"sentence": ["a fine film ."] * n, "label": [i % 2 for i in range(n)]})  # noqa: E731
        return datasets.DatasetDict(train=split(4), validation=split(2))

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = task_cfg("sst2")
    data.load_task_data(task, {"dir": None})
    data.load_task_data({**task, "hub": {**task["hub"], "revision": "bcd0f4c"}}, {"dir": None})
    assert asked == [None, "bcd0f4c"]
    local = {**task, "hub": {**task["hub"], "dataset": str(tmp_path), "revision": "v2"}}
    with pytest.raises(UserError, match=f"task.hub.revision=v2 picks a version of a dataset on the hub, but {tmp_path} is a local folder"):
        data.check_layout(local)
    with pytest.raises(UserError, match="leave task.hub.revision unset"):
        data.load_task_data(local, {"dir": None})


def test_hub_failure_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as err:
        data.load_task_data(task_cfg("rte"), {"dir": None})
    assert "nyu-mll/glue/rte could not be loaded" in str(err.value) and "GLUE_DIR" in str(err.value)
    assert "\n" not in str(err.value)


MOVIES = {"name": "movies", "glue_dir": None, "tsv": None,
          "hub": {"dataset": None, "text_columns": ["review"], "label_column": "sentiment", "dev_splits": {"dev": "validation"}},
          "labels": ["neg", "pos"], "metrics": ["accuracy"], "main_metric": "accuracy"}


def _movies(dataset: str) -> dict:
    return {**MOVIES, "hub": {**MOVIES["hub"], "dataset": dataset}}


@pytest.fixture()
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` caches what it builds from local files; keep that out of the user's cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return tmp_path / "datasets-cache"


def test_a_folder_of_csv_files_is_a_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, datasets_cache: Path):
    """A task of one's own need not be GLUE-shaped: `hub.dataset` names any dataset that
    `datasets.load_dataset` opens, here a local folder of CSV files named by split, with its own
    column names and string labels; $GLUE_DIR, set for the GLUE tasks, is not consulted."""
    folder = tmp_path / "movies"
    folder.mkdir()
    (folder / "train.csv").write_text('review,sentiment\n"a fine, warm film",pos\ndull,neg\nlovely,pos\n')
    (folder / "validation.csv").write_text("review,sentiment\nawful,neg\ngreat,pos\n")
    monkeypatch.setenv("GLUE_DIR", str(FIXTURE_GLUE))
    data.check_layout(_movies(str(folder)))
    loaded = data.load_task_data(_movies(str(folder)), {"dir": str(FIXTURE_GLUE)})
    assert loaded.train.texts == [("a fine, warm film",), ("dull",), ("lovely",)] and loaded.train.labels == [1, 0, 1]
    assert loaded.dev["dev"].labels == [0, 1] and loaded.dev["dev"].source == f"{folder}:validation"
    assert datasets_cache.is_dir()
    held = data.load_task_data(_movies(str(folder)), {"dir": None, "holdout": 1})  # a dataset's rows are held out too
    assert list(held.dev) == [data.HOLDOUT] and len(held.train) == 2
    assert set(held.train.texts + held.dev[data.HOLDOUT].texts) == set(loaded.train.texts)
    (folder / "validation.csv").write_text("review,sentiment\nawful,bad\n")
    with pytest.raises(UserError, match=r"movies:validation, row 0: label 'bad' is not one of \['neg', 'pos'\]"):
        data.load_task_data(_movies(str(folder)), {"dir": None})
    (folder / "validation.csv").write_text("review,sentiment\nawful,neg\n,pos\n")  # an empty cell: None, which no tokenizer takes
    with pytest.raises(UserError, match=r"movies:validation, row 1: column 'review' holds None, not text"):
        data.load_task_data(_movies(str(folder)), {"dir": None})
    with pytest.raises(UserError, match=r"dataset .*nope could not be loaded .*set task.hub.dataset to a hub id or to a local folder"):
        data.load_task_data(_movies(str(tmp_path / "nope")), {"dir": None})
    for split in ("train", "validation"):  # a column of numbers alone (in every split) reads as numbers
        (folder / f"{split}.csv").write_text("review,sentiment\n5,neg\n3,pos\n")
    with pytest.raises(UserError, match=r"row 0: column 'review' holds 5 \(int\), not text; the dataset must store this column as strings"):
        data.load_task_data(_movies(str(folder)), {"dir": None})


@pytest.mark.parametrize("labels", [["true", "false"], ["False", "True"], ["neg", "pos"]])
def test_a_column_of_true_and_false_labels_is_read_by_name(tmp_path: Path, datasets_cache: Path, labels: list[str]):
    """A CSV column of true/false reads as booleans; each is the class whose label reads 'true' or
    'false' (any case), wherever it stands in `labels`, where True used to be class id 1 whatever
    that class was called (labels [true, false] trained every row on the other class)."""
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "train.csv").write_text("review,sentiment\nfine,true\nbad,false\nok,TRUE\n")
    (folder / "validation.csv").write_text("review,sentiment\nawful,False\n")
    task = {**_movies(str(folder)), "labels": labels}
    if "neg" in labels:
        with pytest.raises(UserError, match=r"train, row 0: label True is a boolean .* task.labels must name 'true' and 'false' once each"):
            data.load_task_data(task, {"dir": None})
        return
    loaded = data.load_task_data(task, {"dir": None})
    true, false = (next(i for i, name in enumerate(labels) if name.lower() == word) for word in ("true", "false"))
    assert loaded.train.labels == [true, false, true] and loaded.dev["dev"].labels == [false]


@pytest.mark.parametrize(("labels", "train", "read"), [
    ([1, 2, 3], [1, 3, 2], [0, 2, 1]),  # a review's stars: 1 is the first class, 3 the last
    (["-1", "1"], [-1, 1, 1], [0, 1, 1]),  # a sign, quoted in YAML
    ([1, 0], [1, 0, 0], [0, 1, 1]),  # the label 1, not the class at position 1
    ([0, 1], [1, 0, 1], [1, 0, 1]),  # value and position agree
])
def test_integer_labels_are_read_by_value(tmp_path: Path, datasets_cache: Path, labels: list, train: list[int], read: list[int]):
    """Where the task's labels are themselves integers, a CSV column of integers holds those labels,
    as a TSV of the same rows is read, not positions in the list: stars 1..3 were read one class up
    (1 as the class of 2) and a 3 was refused as "no class id in 0..2 nor one of [1, 2, 3]". A
    column saved as floats reads the same; a value that is none of the labels is refused, naming
    the split and row."""
    folder = tmp_path / "stars"
    folder.mkdir()
    (folder / "train.csv").write_text("review,sentiment\n" + "".join(f"text {i},{value}\n" for i, value in enumerate(train)))
    (folder / "validation.csv").write_text(f"review,sentiment\nlast,{train[-1]}\n")
    task = {**_movies(str(folder)), "labels": labels}
    loaded = data.load_task_data(task, {"dir": None})
    assert loaded.train.labels == read and loaded.dev["dev"].labels == read[-1:]
    (folder / "validation.csv").write_text("review,sentiment\nlast,7\n")
    with pytest.raises(UserError, match=rf"stars:validation, row 0: label 7 is not one of {re.escape(str(labels))} \(a test split's -1"):
        data.load_task_data(task, {"dir": None})
    # a column saved as floats (1.0, as numpy writes whole numbers) holds the same labels; 1.5 is none
    (folder / "train.csv").write_text("review,sentiment\n" + "".join(f"text {i},{float(value)}\n" for i, value in enumerate(train)))
    (folder / "validation.csv").write_text(f"review,sentiment\nlast,{float(train[-1])}\n")
    floats = data.load_task_data(task, {"dir": None})
    assert floats.train.labels == read and floats.dev["dev"].labels == read[-1:]
    (folder / "validation.csv").write_text("review,sentiment\nlast,1.5\n")
    with pytest.raises(UserError, match=r"stars:validation, row 0: label 1.5 is not one of"):
        data.load_task_data(task, {"dir": None})


def test_training_rows_of_one_answer_are_warned_of(tiny_model_dir: Path, caplog):
    """A run whose training rows hold one class (a CSV in label order cut by data.max_train_samples,
    which keeps a file's first rows) trains a head that answers that class whatever the input,
    and gave figures as if the method had been compared; the run now says so, in its log, as it
    does of dev rows of one class. Two classes, or two scores of a regression, are no such case."""
    from conftest import tiny_overrides

    from prune_cli.config import compose
    from prune_cli.runner import prepare

    sst2 = data.load_task_data(task_cfg("sst2"), {"dir": str(FIXTURE_GLUE)}).train
    assert sst2.labels[:2] == [0, 1]
    assert data.one_answer(task_cfg("sst2"), sst2, 1) == (
        f"the first training row of {sst2.source} (data.max_train_samples=1) holds only class 'negative': the head learns to give "
        "it whatever the input; the cut keeps the file's first rows, so a file in label order needs more of them, or its rows shuffled")
    assert data.one_answer(task_cfg("sst2"), sst2, 2) is None and data.one_answer(task_cfg("sst2"), sst2, None) is None
    sorted_rows = data.Examples(sst2.texts, sorted(sst2.labels), "sorted.csv")
    assert data.one_answer(task_cfg("sst2"), sorted_rows, 5).startswith("the first 5 training rows of sorted.csv")
    one_class = data.Examples(sst2.texts[:3], [1, 1, 1], "ones.csv")
    assert data.one_answer(task_cfg("sst2"), one_class, None) == ("every training row of ones.csv holds class 'positive': the head "
                                                               "learns to give it whatever the input")
    assert data.one_answer(task_cfg("stsb"), data.Examples(sst2.texts[:2], [2.5, 2.5], "flat.tsv"), None).startswith(
        "every training row of flat.tsv holds the score 2.5")
    assert data.one_answer(task_cfg("stsb"), data.Examples(sst2.texts[:2], [2.5, 3.0], "two.tsv"), None) is None
    prepare(compose(tiny_overrides(tiny_model_dir, "data.max_train_samples=1")), with_train=True)
    assert "the first training row of" in caplog.text and "holds only class 'negative'" in caplog.text
    caplog.clear()
    prepare(compose(tiny_overrides(tiny_model_dir, "data.max_train_samples=2")), with_train=True)
    assert "only class" not in caplog.text
    # scored on rows of one class, a run is judged on how often it gives that answer (evaluate reads no training rows)
    dev = data.load_task_data(task_cfg("sst2"), {"dir": str(FIXTURE_GLUE)}).dev["dev"]
    prepare(compose(tiny_overrides(tiny_model_dir, "data.max_eval_samples=1")), with_train=False)
    assert caplog.text.count("only class") == 1 and (
        f"the first dev row of {dev.source} (data.max_eval_samples=1) holds only class '{['negative', 'positive'][dev.labels[0]]}': the score "
        "says how often the model gives it, not whether it tells the answers apart; the cut keeps the file's first rows") in caplog.text


def test_labels_yaml_reads_as_booleans_are_their_text(tmp_path: Path):
    """`labels: [true, false]` are booleans to YAML, and their text was Python's ("True"), so a TSV
    of true/false rows failed with "label 'true' is not one of ['True', 'False']" and a prediction
    file would have written True. They read as YAML writes them. `labels: [yes, no]` are booleans
    to YAML too, whose yes the data holds and the config no longer can: the error says to quote them."""
    from prune_cli.predictions import answer_text

    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\ttrue\nbad\tfalse\n")
    task = {**task_cfg("sst2"), "labels": [True, False], "label_names": None}
    data.check_labels(task)
    assert data.read_glue_tsv(tmp_path / "train.tsv", task).labels == [0, 1]
    assert [answer_text(task, i) for i in (0, 1)] == ["true", "false"] and data.label_names(task) == ["true", "false"]
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\tyes\n")
    with pytest.raises(UserError, match=r"train.tsv:2: label 'yes' is not one of \['true', 'false'\]; YAML reads yes, no, on, off, "
                                        r"true and false unquoted as booleans, .* e.g. labels: \['yes', 'no'\]"):
        data.read_glue_tsv(tmp_path / "train.tsv", task)
    with pytest.raises(UserError, match="must be null .* or a list of two or more different classes"):
        data.check_labels({**task, "labels": [True, "true"]})  # one class twice, as the data writes it


def test_class_label_columns_are_read_by_name_and_bad_ids_refused(monkeypatch: pytest.MonkeyPatch):
    """A dataset's own class column (ids with names) may list the classes in another order than
    the task's labels: each row is read by its class name. An id outside the classes (a test
    split's -1) is an error naming the split and row, never a class."""
    import datasets

    features = datasets.Features({"review": datasets.Value("string"), "sentiment": datasets.ClassLabel(names=["pos", "neg"])})
    table = {"review": ["good", "bad", "fine"], "sentiment": [0, 1, 0]}
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name: datasets.DatasetDict(
        train=datasets.Dataset.from_dict(table, features=features), validation=datasets.Dataset.from_dict(table, features=features)))
    assert data.load_task_data(_movies("me/movies"), {"dir": None}).train.labels == [1, 0, 1]
    wrong = {**_movies("me/movies"), "labels": ["negative", "positive"]}
    with pytest.raises(UserError, match=r"me/movies:train: the dataset's classes are \['pos', 'neg'\]; .*missing: \['pos', 'neg'\]"):
        data.load_task_data(wrong, {"dir": None})
    plain = {"review": ["good", "unlabelled"], "sentiment": [1, -1]}
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name: datasets.DatasetDict(
        train=datasets.Dataset.from_dict(plain), validation=datasets.Dataset.from_dict(plain)))
    with pytest.raises(UserError, match=r"me/movies:train, row 1: label -1 is no class id in 0..1 .*a test split's -1"):
        data.load_task_data(_movies("me/movies"), {"dir": None})
    with pytest.raises(UserError, match=r"me/movies:train: no label column 'label' \(found \['review', 'sentiment'\]\)"):
        data.load_task_data({**MOVIES, "hub": {**_movies("me/movies")["hub"], "label_column": None}}, {"dir": None})


@pytest.mark.parametrize(("task", "change", "message"), [
    ("sst2", {"glue_dir": 5}, "glue_dir=5 must be the name of the task's folder (text)"),
    ("sst2", {"tsv": {"header": None}}, "tsv.header=null must be true (the files' first line names the columns) or false"),
    ("sst2", {"tsv": {"dev_files": {"dev": 5}}}, "tsv.dev_files={'dev': 5} must be a mapping of each split's key to its file"),
    ("sst2", {"tsv": {"dev_files": None}}, "tsv.dev_files=null must be a mapping"),
    ("sst2", {"hub": {"dev_splits": ["validation"]}}, "hub.dev_splits=['validation'] must be a mapping"),
    ("sst2", {"test": {"files": {"SST-2": None}}}, "test.files={'SST-2': None} must be a mapping"),
    ("cola", {"tsv": {"label_column": "label"}}, "tsv.label_column='label' must be a column's position (0, 1, ...): the files have no header"),
    ("cola", {"tsv": {"text_columns": [-1]}}, "tsv.text_columns holds -1, which must be a column's position"),
    ("sst2", {"tsv": {"label_column": None}}, "tsv.label_column=null must be a column's name in the header (text) or its position"),
    ("sst2", {"label_names": "negative"}, "label_names='negative' must be a list naming each class"),
    # the test block's columns: a run trained with these and was refused only by predict, its stored config unfixable
    ("sst2", {"test": {"index_column": None}}, "test.index_column=null must be a column's name in the test files' header (text) "
                                               "or its position (0, 1, ...)"),
    ("sst2", {"test": {"text_columns": "sentence"}}, "test.text_columns='sentence' must be a list of the test files' text columns"),
    ("sst2", {"test": {"text_columns": [True]}}, "test.text_columns holds True, which must be a column's name"),
    # one column of a pair task's two: predict fed the model single sentences, without a word
    ("mrpc", {"test": {"text_columns": ["#1 String"]}}, "test.text_columns=['#1 String'] must be 2 column(s), one for each input "
                                                        "the model is trained on (tsv.text_columns: ['#1 String', '#2 String'])"),
])
def test_a_task_layouts_names_and_switches_are_checked_when_composed(task: str, change: dict, message: str):
    """Each of these failed in a TypeError or ValueError traceback once the data was read (a folder
    or file name that is a number or a list, a header switch that is null, a column name in a file
    without a header), read the class names letter by letter, or read a pair task's test rows as
    single sentences."""
    cfg = task_cfg(task)
    for key, value in change.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    with pytest.raises(UserError, match=re.escape(f"task '{task}': {message}")):
        data.check_layout(cfg)
        data.check_labels(cfg)


def test_a_task_must_say_where_its_data_is():
    glue = task_cfg("sst2")
    data.check_layout(glue)
    with pytest.raises(UserError, match="task 'movies' says where no data is"):
        data.check_layout({**MOVIES, "hub": None})
    with pytest.raises(UserError, match="glue_dir and tsv: go together"):
        data.check_layout({**_movies("me/movies"), "glue_dir": "Movies"})
    with pytest.raises(UserError, match="hub: names neither a dataset .* nor a config of GLUE's nyu-mll/glue"):
        data.check_layout({**glue, "hub": {**glue["hub"], "config": None}})
    with pytest.raises(UserError, match="the same number of text columns and the same dev split keys"):
        data.check_layout({**glue, "hub": {**glue["hub"], "text_columns": ["sentence1", "sentence2"]}})


def test_sequences_are_cut_at_the_models_positions(tiny_model_dir: Path, caplog):
    """data.max_seq_length past the model's position embeddings would index past them on the
    first long example; like transformers' run_glue, the run cuts at the model's limit and says so."""
    import torch
    from conftest import tiny_overrides
    from transformers import AutoConfig

    from prune_cli.config import compose
    from prune_cli.runner import encode_split, load_encoder

    positions = AutoConfig.from_pretrained(tiny_model_dir).max_position_embeddings
    cfg = compose(tiny_overrides(tiny_model_dir, f"data.max_seq_length={positions * 2}"))
    _, _, tokenizer = load_encoder(cfg, torch.device("cpu"))
    assert f"data.max_seq_length={positions * 2} is longer than this model takes ({positions} positions)" in caplog.text
    long_text = data.Examples([(" ".join(["film"] * (positions * 3)),)], [1], "test")
    assert len(encode_split(cfg, long_text, tokenizer, None).fields["input_ids"][0]) == positions


def test_a_roberta_is_cut_at_the_positions_it_takes(tiny_roberta_dir: Path, caplog):
    """RoBERTa numbers its positions from padding_idx + 1, so it takes two tokens fewer than it
    has position embeddings; with a tokenizer that names no limit, the config's count was the
    bound, and a text that long failed on its first batch with an IndexError."""
    import torch
    from conftest import TINY_POSITIONS, tiny_overrides
    from transformers import AutoModel

    from prune_cli.backbone import position_limit
    from prune_cli.config import compose
    from prune_cli.runner import encode_split, load_encoder

    assert position_limit(AutoModel.from_pretrained(tiny_roberta_dir)) == TINY_POSITIONS
    cfg = compose(tiny_overrides(tiny_roberta_dir, f"data.max_seq_length={TINY_POSITIONS + 2}"))
    encoder, _, tokenizer = load_encoder(cfg, torch.device("cpu"))
    assert f"is longer than this model takes ({TINY_POSITIONS} positions)" in caplog.text
    long_text = data.Examples([(" ".join(["film"] * (TINY_POSITIONS * 3)),)], [1], "test")
    ids = torch.as_tensor(encode_split(cfg, long_text, tokenizer, None).fields["input_ids"][0])[None]
    assert ids.shape == (1, TINY_POSITIONS)
    hidden = encoder.encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert hidden.shape == (1, TINY_POSITIONS, 32)


def test_a_berts_positions_are_all_taken(tiny_model_dir: Path):
    from conftest import TINY_POSITIONS
    from transformers import AutoModel

    from prune_cli.backbone import position_limit

    assert position_limit(AutoModel.from_pretrained(tiny_model_dir)) == TINY_POSITIONS


@pytest.mark.parametrize("task, shortest", [("sst2", 3), ("mrpc", 5)])
def test_a_sequence_length_with_no_room_for_text_is_refused(tiny_model_dir: Path, task: str, shortest: int):
    """One below [CLS] + a token + [SEP] (a pair: a token of each side and three specials) the
    tokenizer does not fail: a single sentence comes back as [CLS] [SEP], and a pair it cannot cut
    comes back uncut, longer than the length asked for. The shortest length allowed keeps a token
    of every sentence."""
    import torch
    from conftest import tiny_overrides

    from prune_cli.config import compose
    from prune_cli.runner import encode_split, load_encoder

    with pytest.raises(UserError, match=rf"^data.max_seq_length={shortest - 1} is too short for task '{task}': .* "
                                        rf"give data.max_seq_length >= {shortest} \(128 is usual\)$"):
        load_encoder(compose(tiny_overrides(tiny_model_dir, f"task={task}", f"data.max_seq_length={shortest - 1}")), torch.device("cpu"))
    cfg = compose(tiny_overrides(tiny_model_dir, f"task={task}", f"data.max_seq_length={shortest}"))
    _, _, tokenizer = load_encoder(cfg, torch.device("cpu"))
    sentences = tuple(" ".join(["film"] * 20) for _ in range(data.text_fields(cfg.task)))
    ids = encode_split(cfg, data.Examples([sentences], [1], "test"), tokenizer, None).fields["input_ids"][0]
    film = tokenizer.convert_tokens_to_ids("film")
    assert len(ids) == shortest and list(ids).count(film) == len(sentences)


def test_a_model_with_too_few_positions_for_a_pair_is_named_as_the_bound(tiny_model_dir: Path):
    """When the model's positions, not data.max_seq_length, leave no room, raising the setting
    would not help, and the error does not ask for it."""
    from conftest import tiny_overrides
    from transformers import AutoTokenizer

    from prune_cli.config import compose
    from prune_cli.runner import require_room_for_text

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.model_max_length = 4  # as load_encoder caps it for a model of 4 positions
    cfg = compose(tiny_overrides(tiny_model_dir, "task=mrpc"))
    with pytest.raises(UserError, match=r"^this model takes 4 positions, too few for task 'mrpc': a sentence pair takes 3 special "
                                        r"tokens from this tokenizer and at least one token of each sentence$"):
        require_room_for_text(cfg, tokenizer)
    tokenizer.model_max_length = 5
    require_room_for_text(cfg, tokenizer)


@pytest.mark.parametrize("labels", ['"01"', '["0"]', '["0", "0"]', '["0", 0]', '{a: 0}', '[["0"], "1"]'])
def test_labels_that_are_no_list_of_classes_are_refused(labels: str):
    """A string would be read letter by letter ("01" ran as classes '0' and '1'), one class is no
    classifier, and a repeated class gets an output that no row trains."""
    task = {**task_cfg("sst2"), "labels": OmegaConf.to_container(OmegaConf.create(f"labels: {labels}"))["labels"]}
    with pytest.raises(UserError, match=r"^task 'sst2': labels=.* must be null \(a regression\) or a list of two or more different classes"):
        data.check_labels(task)


def test_labels_written_as_numbers_match_the_files_text():
    """`labels: [0, 1]` in YAML are numbers, the TSV holds '0' and '1': the same classes, where it
    was 'label '0' is not one of [0, 1]'."""
    task = {**task_cfg("sst2"), "labels": [0, 1]}
    data.check_labels(task)
    assert data.read_glue_tsv(FIXTURE_GLUE / "SST-2" / "train.tsv", task).labels == \
        data.read_glue_tsv(FIXTURE_GLUE / "SST-2" / "train.tsv", task_cfg("sst2")).labels


@pytest.mark.parametrize("change, message", [
    ({"metrics": "accuracy"}, r"metrics='accuracy' must be a list of different metric names"),
    ({"metrics": []}, r"metrics=\[\] must be a list"),
    ({"metrics": [["accuracy"]]}, r"metrics=\[\['accuracy'\]\] must be a list"),
    ({"metrics": ["accuracy", "mcc"]}, r"unknown metric\(s\) \['mcc'\]; known: \['accuracy', 'f1', 'matthews_correlation'"),
    ({"main_metric": "f1"}, r"main_metric='f1' is not one of its metrics \['accuracy'\]"),
    ({"metrics": ["accuracy", "pearson"]}, r"pearson is a metric of regression scores, but the task has 2 classes"),
    ({"labels": ["0", "1", "2"], "metrics": ["accuracy", "f1"]}, r"f1 is a metric of two classes, but the task has 3 classes"),
    ({"labels": None}, r"accuracy is a metric of classes, but the task is a regression \(labels: null\)"),
])
def test_a_tasks_metrics_are_checked_before_training(change: dict, message: str):
    """Each of these failed only when the first dev set was scored, after training: a KeyError
    for a main metric not computed or for no metrics at all, scikit-learn's error for binary F1 of
    three classes or accuracy of scores, the metric's name spelled letter by letter for a string."""
    from prune_cli.metrics import check_task_metrics

    for name in group_options("task"):
        check_task_metrics(task_cfg(name))  # every packaged task passes
    with pytest.raises(UserError, match=rf"^task 'sst2': {message}"):
        check_task_metrics({**task_cfg("sst2"), **change})


@pytest.mark.parametrize("value", [0.1234567, 3.3, 0.0])
def test_a_constant_prediction_correlates_zero_not_nan(value: float):
    """A head that answers one score (a pruned-out STS-B model, a tiny learning rate) scored NaN, where
    the float32 scores' standard deviation was a rounding error above 0: metrics.json held NaN."""
    from prune_cli.metrics import task_metrics

    labels = np.arange(12, dtype=np.float64) / 2.4
    scores = task_metrics(["pearson", "spearmanr"], np.full(12, value, dtype=np.float32), labels)
    assert scores == {"pearson": 0.0, "spearmanr": 0.0}
    varied = task_metrics(["pearson", "spearmanr"], labels.astype(np.float32), labels)
    assert varied == pytest.approx({"pearson": 1.0, "spearmanr": 1.0})


def test_f1_without_a_positive_row_is_zero_and_quiet():
    """scikit-learn printed an UndefinedMetricWarning, with a path into its source, amid `evaluate`'s
    output for a dev slice with no positive row (data.max_eval_samples=1 on MRPC)."""
    import warnings

    from prune_cli.metrics import task_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert task_metrics(["f1"], np.zeros(3, dtype=int), np.zeros(3, dtype=int)) == {"f1": 0.0}
    assert task_metrics(["f1"], np.array([1, 0, 1]), np.array([1, 1, 0])) == {"f1": 0.5}


@pytest.mark.parametrize("columns", ["[]", "[sentence, sentence, sentence]", "sentence", "[[sentence]]", "[true]"])
@pytest.mark.parametrize("layout", ["tsv", "hub"])
def test_text_columns_are_one_or_two_columns(columns: str, layout: str):
    """None made every input empty (an IndexError on the first row), a third column was never read,
    and a string was read letter by letter as columns 's', 'e', ..."""
    task = task_cfg("sst2")
    task[layout]["text_columns"] = OmegaConf.to_container(OmegaConf.create(f"c: {columns}"))["c"]
    with pytest.raises(UserError, match=rf"^task 'sst2': {layout}.text_columns=.* must list one column \(a sentence\) or two \(a sentence pair\)"):
        data.check_layout(task)


def test_the_rows_fingerprint_reads_rows_not_their_order_or_label_type():
    """What `evaluate` and `export --check` compare to tell other data from another result."""
    rows = data.Examples(texts=[("a fine film",), ("a dull film",)], labels=[1, 0], source="x")
    same = data.Examples(texts=[("a dull film",), ("a fine film",)], labels=[0.0, 1.0], source="elsewhere")
    assert rows.rows_sha256() == same.rows_sha256()
    for other in (data.Examples(texts=[("a fine film",), ("a dull film",)], labels=[1, 1], source="x"),
                  data.Examples(texts=[("a fine film .",), ("a dull film",)], labels=[1, 0], source="x"),
                  data.Examples(texts=[("a fine film", ""), ("a dull film",)], labels=[1, 0], source="x"),
                  rows.first(1)):
        assert other.rows_sha256() != rows.rows_sha256()
