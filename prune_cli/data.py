"""Load a task's examples from a local GLUE-style TSV folder or a `datasets` dataset into one plain shape.

Everything after this module sees `Examples` (texts + numeric labels), or `Unlabelled` (GLUE's
test sets: row ids + texts), and never knows where the data came from. The per-task layout
(columns, header, label names, dev files, test files) lives in `configs/task/*.yaml`, so a new
task needs a YAML file, not code: a GLUE-style TSV folder (`glue_dir` + `tsv`), or any dataset
`datasets.load_dataset` opens (`hub.dataset`: a hub id, or a local folder of CSV / JSON /
Parquet files named by split), GLUE's own `nyu-mll/glue` when that key is absent.

The GLUE TSVs have traps (see `shared/glue/README.md`): unbalanced quotes (read with
`QUOTE_NONE`), a UTF-8 BOM on MRPC's header (`utf-8-sig`), CoLA's train and dev files without a
header (its test file has one), and a dev file without a trailing newline. Malformed rows are an
error naming the file and line, never skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from prune_cli.backbone import looks_local
from prune_cli.errors import UserError, first_line, not_utf8

HUB_DATASET = "nyu-mll/glue"
HOLDOUT = "holdout"  # the split key of training rows set aside to score on (`data.holdout`)
GLUE_DIR_ENV = "GLUE_DIR"
# How each command is pointed at a GLUE folder: adapt composes a config, the commands that read a
# finished run take a flag; a message that named only data.dir= sent evaluate's users to an option
# it does not have.
POINT_AT_DATA = f"data.dir=... (adapt), --data-dir (evaluate, predict, export --check, analyze sensitivity) or ${GLUE_DIR_ENV}"


@dataclass(frozen=True)
class Examples:
    """One split: `texts[i]` is a 1- or 2-tuple of strings, `labels[i]` a class id or a float."""

    texts: list[tuple[str, ...]]
    labels: list[float] | list[int]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, limit: int | None) -> "Examples":
        """The first `limit` rows (all of them for None or 0): how `data.max_*_samples` cut a split."""
        return Examples(self.texts[:limit], self.labels[:limit], self.source) if limit else self

    def rows_sha256(self) -> str:
        """A fingerprint of the rows (each one's texts and label), in any order: a run's metrics.json
        keeps it for the rows it was scored on, so a re-score can tell other data (a GLUE folder
        replaced or edited, the hub's copy where a TSV was read) from another result. Order is left
        out: the same rows read in another order give the same scores."""
        rows = sorted(hashlib.sha256(json.dumps([list(texts), float(label)]).encode()).digest()
                      for texts, label in zip(self.texts, self.labels))
        return hashlib.sha256(b"".join(rows)).hexdigest()


SKIPPED = Examples([], [], "skipped")  # the training split of a run re-scored, not trained


@dataclass(frozen=True)
class TaskData:
    """Train split plus the splits to score on: "dev", and "mm" for MNLI's mismatched set, or
    `HOLDOUT` alone (`data.holdout`)."""

    train: Examples
    dev: dict[str, Examples]


def is_regression(task: Mapping[str, Any]) -> bool:
    return task["labels"] is None


def num_outputs(task: Mapping[str, Any]) -> int:
    return 1 if is_regression(task) else len(task["labels"])


def label_names(task: Mapping[str, Any]) -> list[str]:
    """What each class means, for people: `task.label_names` where the data's own labels are
    codes (GLUE writes SST-2's classes as "0" and "1"; the hub's `glue` names them negative and
    positive), else the labels themselves. Files keep the data's labels; displays and exported
    models (`id2label`) use these. A run made before the key existed is given the packaged task's
    when its config is read back (`runner.fill_in_later_task_keys`)."""
    return as_written(task.get("label_names") or task["labels"])


def class_labels(task: Mapping[str, Any]) -> list[str]:
    """The task's classes as a data file writes them (`as_written`)."""
    return as_written(task["labels"])


def as_written(labels: Sequence[Any]) -> list[str]:
    """Labels as text, as a file writes them: YAML reads `labels: [0, 1]` as numbers and `[true,
    false]` as booleans, whose text must be `true`, not Python's `True`, for a TSV's `true` to be
    found among them (`config.label_text`)."""
    from prune_cli.config import label_text

    return [str(label_text(label)) for label in labels]


def labels_are_integers(task: Mapping[str, Any]) -> bool:
    """Whether every class label is an integer's text (`labels: [0, 1]`, `[1, 2, 3, 4, 5]`, `["-1",
    "1"]`): a dataset's integers are then the labels themselves, not positions in the list."""
    return not is_regression(task) and all(re.fullmatch(r"-?[0-9]+", label) for label in class_labels(task))


# What rows of one answer cost, by what they are used for (`one_answer`)
ONE_ANSWER_COSTS = {"training": ("data.max_train_samples", "the head learns to give it whatever the input"),
                    "dev": ("data.max_eval_samples", "the score says how often the model gives it, not whether it tells the answers apart")}


def one_answer(task: Mapping[str, Any], rows: Examples, cut: int | None, use: str = "training") -> str | None:
    """Why a run's figures on `rows` cut at `cut` measure nothing, where they would: every row kept
    is of one class (or, in a regression, one score). Trained on such rows (`use` "training") the
    head learns to give that answer whatever the input; scored on them ("dev") a run is judged on
    how often it gives it. The cuts (data.max_train_samples, data.max_eval_samples) keep a file's
    first rows, and a dataset of one's own in label order (a CSV sorted by its label column) gives
    one class for any cut short of the whole; None where the rows hold two answers or more."""
    key, cost = ONE_ANSWER_COSTS[use]
    kept = rows.first(cut)
    if len(set(kept.labels)) > 1:
        return None
    only = kept.labels[0]
    answer = f"the score {only:g}" if is_regression(task) else f"class '{label_names(task)[int(only)]}'"
    if len(kept) < len(rows):
        first = f"the first {len(kept)} {use} rows of {rows.source} ({key}={cut}) hold" if len(kept) > 1 else \
            f"the first {use} row of {rows.source} ({key}={cut}) holds"
        return f"{first} only {answer}: {cost}; the cut keeps the file's first rows, so a file in label order needs more of them, or its rows shuffled"
    return f"every {use} row of {rows.source} holds {answer}: {cost}"


def dataset_name(task: Mapping[str, Any]) -> str:
    """The `datasets` dataset the task's `hub:` block reads: `hub.dataset`, GLUE's by default."""
    return str((task.get("hub") or {}).get("dataset") or HUB_DATASET)


def is_glue(task: Mapping[str, Any]) -> bool:
    """A GLUE task (scores that the hub files under GLUE): its dataset, where it has one, is GLUE's."""
    return bool(task.get("hub")) and dataset_name(task) == HUB_DATASET


def text_fields(task: Mapping[str, Any]) -> int:
    """1 for a single-sentence task, 2 for a sentence pair."""
    return len((task.get("tsv") or task["hub"])["text_columns"])


def dev_keys(task: Mapping[str, Any]) -> list[str]:
    """The task's dev splits by key: "dev", and "mm" for MNLI's mismatched set."""
    return list(task["tsv"]["dev_files"] if task.get("tsv") else task["hub"]["dev_splits"])


def scoring_keys(task: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> list[str]:
    """The splits a run is scored on: `HOLDOUT` where `data.holdout` sets training rows aside, else
    the task's dev splits. Every reader of a run (evaluate, predict, export) goes by this, so none
    of them scores a held-out run on dev, or the reverse."""
    return [HOLDOUT] if data_cfg.get("holdout") else dev_keys(task)


def row_text(texts: tuple[str, ...]) -> str:
    """A row's text as one string (a pair's two sides joined by a tab), for `hold_out`'s containment tests."""
    return "\t".join(texts).strip()


def occurs_elsewhere_in(texts: list[str]) -> Callable[[str], bool]:
    """Whether a text occurs more than once across `texts` (a row counts itself): False for a row
    that no other row contains, True for a piece of a longer row or a repeated one. `hold_out` draws
    only rows for which it is False, and `scripts/holdout_rows.py` measures a plain draw with the same
    rule. It is `str.count(text) > 1` on the rows joined by newlines, stopped at the second match:
    the same non-overlapping matches, without scanning the rest of SST-2's 4.5 MB for each of the
    ~8,400 rows `hold_out` tries (7.2 s of count against 2.7 s)."""
    everything = "\n" + "\n".join(texts) + "\n"

    def occurs_elsewhere(text: str) -> bool:
        first = everything.find(text)
        return first != -1 and everything.find(text, first + len(text)) != -1

    return occurs_elsewhere


def hold_out(train: Examples, size: int, seed: int, task_name: str) -> tuple[Examples, Examples]:
    """(the rows left to train on, `size` rows set aside to score on), both in file order.

    Why: a recipe chosen by its dev score is scored on the set it was chosen on, and GLUE's test
    labels are not public, so choosing on rows of the training split keeps dev for the final
    figure. The rows are drawn by numpy's legacy `RandomState`, whose stream numpy keeps fixed
    across versions, from `data.holdout_seed` (not the run's seed): every run of a comparison,
    whatever its seed, is scored on the same rows and never trains on them.

    A held-out row must not be trained on in pieces either. SST-2's training rows are the phrases
    of parsed sentences: nine in ten rows drawn at random sit inside a longer training row, and
    average 9 words against dev's 19. So only rows that no other training row contains are drawn
    (whole sentences, like dev's), and every training row found inside a held-out row is dropped
    from training (that sentence's phrases, and any other row that occurs in it). Where no row
    contains another (pairs, CoLA, STS-B) this is a plain random draw."""
    texts = [row_text(row) for row in train.texts]
    occurs_elsewhere = occurs_elsewhere_in(texts)
    held: list[int] = []
    for index in np.random.RandomState(seed).permutation(len(train)):
        if not occurs_elsewhere(texts[index]):  # in no other row (nor twice): not a piece of a longer one
            held.append(int(index))
            if len(held) == size:
                break
    if len(held) < size:
        raise UserError(f"task '{task_name}': data.holdout={size}, but only {len(held)} training rows ({train.source}) "
                        "are neither repeated nor part of another row (those are trained on in their other copy); hold out fewer rows")
    chosen = set(held)
    held_text = "\n".join(texts[i] for i in held)
    rest = [i for i, text in enumerate(texts) if i not in chosen and text not in held_text]
    if not rest:
        raise UserError(f"task '{task_name}': data.holdout={size} would leave no training examples "
                        f"(the training set, {train.source}, has {len(train)}); hold out fewer rows")
    held.sort()
    dropped = len(train) - size - len(rest)
    where = f"{train.source} (held out: {size} rows, data.holdout_seed={seed}; {dropped} rows inside them not trained on)"
    return (Examples([train.texts[i] for i in rest], [train.labels[i] for i in rest], train.source),
            Examples([train.texts[i] for i in held], [train.labels[i] for i in held], where))


def check_layout(task: Mapping[str, Any]) -> None:
    """A task reads a TSV folder (`glue_dir` + `tsv`), a dataset (`hub`), or both, with one shape.

    Checked when the config is composed, so a task file that could never be read fails before a
    run directory is made, not after the model has loaded."""
    name, tsv, hub = task.get("name"), task.get("tsv"), task.get("hub")
    if not isinstance(name, str) or not name:
        raise UserError(f"the task's name={'null' if name is None else repr(name)} must be text (a task file gives it: name: my-task)")
    for key in ("tsv", "hub", "test"):
        if task.get(key) is not None and not isinstance(task[key], dict):
            raise UserError(f"task '{name}': {key}={task[key]!r} must be a mapping of its settings, or null")
    if not (task.get("glue_dir") and tsv) and not hub:
        raise UserError(f"task '{name}' says where no data is: give it a TSV folder layout (glue_dir and tsv:) "
                        "or a dataset (hub: with dataset, text_columns and dev_splits)")
    if bool(task.get("glue_dir")) != bool(tsv):
        raise UserError(f"task '{name}': glue_dir and tsv: go together (the folder's name and its files' layout); set both or neither")
    if hub and not hub.get("dataset") and not hub.get("config"):
        raise UserError(f"task '{name}': hub: names neither a dataset (hub.dataset: a hub id or a local folder) "
                        f"nor a config of GLUE's {HUB_DATASET} (hub.config)")
    if hub:
        _pinned(task)  # a revision of a local folder fails when the config is composed
    for where, layout in (("tsv", tsv), ("hub", hub)):
        columns = (layout or {}).get("text_columns", [])
        if layout and (not isinstance(columns, list) or len(columns) not in (1, 2)
                       or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in columns)):
            # none had every input empty (an IndexError), a third was never read, a string was read letter by letter
            raise UserError(f"task '{name}': {where}.text_columns={columns!r} must list one column (a sentence) or two "
                            "(a sentence pair), e.g. text_columns: [sentence]")
    _check_layout_values(task)
    if tsv and hub and (len(tsv["text_columns"]) != len(hub["text_columns"]) or list(tsv["dev_files"]) != list(hub["dev_splits"])):
        raise UserError(f"task '{name}': its TSV layout and its dataset must have the same number of text columns "
                        "and the same dev split keys (tsv.dev_files, hub.dev_splits)")


def _check_layout_values(task: Mapping[str, Any]) -> None:
    """The layout's names and switches have the kind the reader takes: a number or a list where a
    folder, file or split name goes (`glue_dir: 5`, `dev_files: {dev: [a]}`) failed in a TypeError
    traceback when the data was read, `header: null` in a ValueError on the header's first column."""
    name, tsv, hub, test = task["name"], task.get("tsv"), task.get("hub"), task.get("test")

    def refuse(key: str, value: Any, wanted: str, held: bool = False) -> None:
        typed = "null" if value is None else repr(value)
        raise UserError(f"task '{name}': {f'{key} holds {typed}, which' if held else f'{key}={typed}'} must be {wanted}")

    if task.get("glue_dir") is not None and not isinstance(task["glue_dir"], str):
        refuse("glue_dir", task["glue_dir"], "the name of the task's folder (text), e.g. glue_dir: SST-2")
    if tsv and not isinstance(tsv.get("header"), bool):
        refuse("tsv.header", tsv.get("header"), "true (the files' first line names the columns) or false")
    if tsv:
        for is_label, column in [*((False, c) for c in tsv["text_columns"]), (True, tsv.get("label_column"))]:
            if not _names_a_column(column, by_name=tsv["header"]):
                refuse("tsv.label_column" if is_label else "tsv.text_columns", column,
                       "a column's name in the header (text) or its position (0, 1, ...)" if tsv["header"]
                       else "a column's position (0, 1, ...): the files have no header (tsv.header: false)", held=not is_label)
    if test and test.get("files") is not None:
        _check_test_columns(task, refuse)
    for key, names in (("tsv.dev_files", (tsv or {}).get("dev_files")), ("hub.dev_splits", (hub or {}).get("dev_splits")),
                       ("test.files", (test or {}).get("files")), ("test.hub_splits", (test or {}).get("hub_splits"))):
        if names is None and key.startswith("test."):
            continue
        if (key.startswith("tsv") and not tsv) or (key.startswith("hub") and not hub):
            continue
        if not isinstance(names, dict) or not names or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in names.items()):
            refuse(key, names, "a mapping of each split's key to its file or split name (text), e.g. {dev: dev.tsv}")


def _names_a_column(column: Any, by_name: bool) -> bool:
    """Whether a layout's column is one the TSV reader takes: a position (0, 1, ...), or, in files
    whose first line names the columns, a name."""
    by_position = isinstance(column, int) and not isinstance(column, bool) and column >= 0
    return by_position or (by_name and isinstance(column, str) and bool(column))


def _check_test_columns(task: Mapping[str, Any], refuse: Callable[..., None]) -> None:
    """A `test:` block's local files are read by column (their first line names them, as GLUE's
    do): an index column and one text column for each of the task's inputs. Unchecked, a run
    trained with `test.text_columns: 5` and was refused only at `predict`, its stored config
    unfixable; one text column for a pair task fed the model single sentences without a word."""
    test = task["test"]
    trained_on = (task.get("tsv") or task["hub"])["text_columns"]  # check_layout has made sure one is there, with 1 or 2
    wanted = "a column's name in the test files' header (text) or its position (0, 1, ...)"
    if not _names_a_column(test.get("index_column"), by_name=True):  # test files are read with their header
        refuse("test.index_column", test.get("index_column"), wanted)
    columns = test.get("text_columns")
    if not isinstance(columns, list) or not columns:
        refuse("test.text_columns", columns, "a list of the test files' text columns, e.g. text_columns: [sentence]")
    for column in columns:
        if not _names_a_column(column, by_name=True):
            refuse("test.text_columns", column, wanted, held=True)
    if len(columns) != len(trained_on):
        refuse("test.text_columns", list(columns), f"{len(trained_on)} column(s), one for each input the model is trained on "
               f"({'tsv' if task.get('tsv') else 'hub'}.text_columns: {list(trained_on)})")


def check_labels(task: Mapping[str, Any]) -> None:
    """`task.labels` is null (a regression) or a list of two or more different classes, each a
    plain value: a string there would be read letter by letter, a repeated class would get an
    output of its own that no row trains. `task.label_names`, where set, names each class once."""
    labels = task.get("labels")
    if labels is not None and (not isinstance(labels, list) or len(labels) < 2 or len(set(as_written(labels))) != len(labels)
                               or not all(isinstance(label, (str, int, float)) for label in labels)):
        raise UserError(f"task '{task['name']}': labels={labels!r} must be null (a regression) or a list of two or more "
                        "different classes, e.g. labels: [neg, pos]")
    names = task.get("label_names")
    if names is None:
        return
    if not isinstance(names, list):
        raise UserError(f"task '{task['name']}': label_names={names!r} must be a list naming each class, e.g. label_names: [negative, positive]")
    if is_regression(task):
        raise UserError(f"task '{task['name']}': label_names={list(names)} is set, but the task is a regression (labels: null); remove it")
    if len(names) != len(task["labels"]) or len(set(as_written(names))) != len(names):
        raise UserError(f"task '{task['name']}': label_names={list(names)} must name each of labels={list(task['labels'])} "
                        "once, in the same order, each name different")


def resolve_glue_dir(configured: str | None) -> Path | None:
    """`data.dir` wins, then the `GLUE_DIR` environment variable; None means "use the hub". A folder
    named by a number (`data.dir=5`, which Hydra reads as one) is that number's text (`label_text`:
    `data.dir=true` the folder "true", as typed, not Python's "True")."""
    from prune_cli.config import label_text

    chosen = (label_text(configured) if configured is not None else "") or os.environ.get(GLUE_DIR_ENV)
    return Path(chosen).expanduser().resolve() if chosen else None


def task_glue_dir(task: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> Path | None:
    """The GLUE folder a task with a TSV layout reads (`resolve_glue_dir`), or None where it reads its
    dataset: a dataset-only task (no `glue_dir`) ignores both `data.dir` and `$GLUE_DIR`."""
    return resolve_glue_dir(data_cfg.get("dir")) if task.get("glue_dir") else None


def data_source(task: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> tuple[str, bool]:
    """(where a run of `task` would read its rows, whether it is there), said without reading them
    (`adapt --dry-run`, which then reads a local folder's: `hydra_entry.rows_to_train`): the choice `load_task_data` makes, so a plan shows a job that would stop
    on its data before the sweep is launched. A hub dataset is checked only by its download."""
    glue_dir = task_glue_dir(task, data_cfg)
    if glue_dir is not None:
        task_dir = glue_dir / task["glue_dir"]
        return (str(task_dir), True) if task_dir.is_dir() else (f"{task_dir} (missing: no such folder)", False)
    if not task.get("hub"):
        return f"none (task.hub is null and no local folder is set: point {POINT_AT_DATA} at its folder)", False
    hub, name = task["hub"], dataset_name(task)
    if looks_local(name):
        folder = _dataset_location(name)
        return (folder, True) if Path(folder).is_dir() else (f"{folder} (missing: no such folder)", False)
    revision = f" at revision {hub['revision']}" if hub.get("revision") is not None else ""
    return f"{_where(task, hub.get('config'))} on the datasets hub{revision}", True


def load_task_data(task: Mapping[str, Any], data_cfg: Mapping[str, Any], with_train: bool = True) -> TaskData:
    """Read train and dev splits for `task`, from the local GLUE folder if one is configured.

    `with_train=False` (re-scoring a saved run) leaves the training split empty; it is still read
    where `data.holdout` takes the rows to score on from it (`hold_out`), in place of the dev splits.
    """
    holdout = data_cfg.get("holdout")
    read_train = with_train or bool(holdout)
    glue_dir = task_glue_dir(task, data_cfg)
    if glue_dir is not None:
        task_dir = glue_dir / task["glue_dir"]
        if not task_dir.is_dir():
            raise UserError(
                f"task '{task['name']}': no folder {task_dir} (looked in data.dir / ${GLUE_DIR_ENV}="
                f"{glue_dir}); put the GLUE TSVs in {task_dir}/{{train,dev}}.tsv, point {POINT_AT_DATA} at "
                f"a folder that has {task['glue_dir']}/, or unset both to use the '{HUB_DATASET}' hub"
            )
        data = TaskData(
            train=read_glue_tsv(task_dir / "train.tsv", task) if read_train else SKIPPED,
            dev={} if holdout else {key: read_glue_tsv(task_dir / name, task) for key, name in task["tsv"]["dev_files"].items()},
        )
    else:
        data = load_from_hub(task)
    if read_train:
        _require_rows(task, "the training set", data.train)
    for key, examples in data.dev.items():
        _require_rows(task, f"the {_split_name(key)}", examples)
    if holdout:
        rest, held = hold_out(data.train, int(holdout), int(data_cfg.get("holdout_seed") or 0), task["name"])
        data = TaskData(train=rest if with_train else SKIPPED, dev={HOLDOUT: held})
    return data


def _split_name(key: str) -> str:
    """A dev split as messages name it: "dev set", or "dev set 'mm'" (MNLI's mismatched)."""
    return "dev set" if key == "dev" else f"dev set '{key}'"


def _require_rows(task: Mapping[str, Any], what: str, rows: Examples | Unlabelled) -> None:
    """A split with no rows (a file with only its header) is refused when it is read: an empty
    training set has nothing to learn from, and an empty dev or test set failed only after training,
    inside the tokenizer (IndexError), where nothing says which file was empty."""
    if len(rows.texts) == 0:
        raise UserError(f"task '{task['name']}': {what} ({rows.source}) has no examples")


def _label_reader(task: Mapping[str, Any]) -> Callable[[str, str], float | int]:
    """What reads one row's label text (and where it is, for the error) as the task's value: a
    score, or a class id. Made once per split, so that the classes' text is worked out once, not
    for each of a split's rows (MNLI's 393k)."""
    if is_regression(task):
        def score(raw: str, where: str) -> float:
            raw = raw.strip()
            try:
                value = float(raw)
            except ValueError:
                raise UserError(f"{where}: label {raw!r} is not a number") from None
            if not math.isfinite(value):  # float() reads 'nan' and 'inf': one such score makes every loss nan
                raise UserError(f"{where}: label {raw!r} is not a finite number")
            return value
        return score
    labels = class_labels(task)
    ids = {label: i for i, label in enumerate(labels)}
    yaml_read = any(isinstance(label, bool) for label in task["labels"])  # `labels: [yes, no]` is [True, False] to YAML

    def class_id(raw: str, where: str) -> int:
        raw = raw.strip()
        if raw not in ids:
            raise UserError(f"{where}: label {raw!r} is not one of {labels}" + (
                "; YAML reads yes, no, on, off, true and false unquoted as booleans, written true and false: quote the labels "
                "as the data writes them, e.g. labels: ['yes', 'no']" if yaml_read else ""))
        return ids[raw]
    return class_id


def read_glue_tsv(path: Path, task: Mapping[str, Any]) -> Examples:
    """Read one labelled GLUE TSV with the format traps handled; errors name the file and line."""
    if not path.is_file():
        raise UserError(
            f"task '{task['name']}': missing file {path}; the GLUE layout is <dir>/{task['glue_dir']}/"
            f"{{train,dev}}.tsv (point {POINT_AT_DATA} at <dir>)"
        )
    layout = task["tsv"]
    texts: list[tuple[str, ...]] = []
    labels: list[Any] = []
    read_label = _label_reader(task)
    for line, (*text, label) in _tsv_rows(path, layout["header"], [*layout["text_columns"], layout["label_column"]]):
        texts.append(tuple(text))
        labels.append(read_label(label, f"{path}:{line}"))
    return Examples(texts=texts, labels=labels, source=str(path))


def _tsv_rows(path: Path, header: bool, columns: Sequence[str | int]) -> Iterator[tuple[int, list[str]]]:
    """(line number, the wanted columns) for each non-blank row: the one place GLUE TSVs are parsed.

    Columns are header names, or 0-based positions in a file without a header (CoLA's train/dev).
    """
    csv.field_size_limit(sys.maxsize)
    try:
        yield from _decoded_tsv_rows(path, header, columns)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}:{_first_undecodable_line(path)}: {not_utf8(exc)}; GLUE's files are UTF-8: save the file as UTF-8") from None


def _first_undecodable_line(path: Path) -> int:
    """The number of the first line of `path` that is not UTF-8. The reader decodes in blocks, so its
    error says where in a block, not on which line; reading the bytes again line by line does, with
    lines ended as the reader ends them (\n, \r\n or a bare \r)."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 0  # pragma: no cover - only called after a decoding error, which some line holds


def _decoded_tsv_rows(path: Path, header: bool, columns: Sequence[str | int]) -> Iterator[tuple[int, list[str]]]:
    """`_tsv_rows` on a file that decodes; a byte that does not ends it in the caller's error."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if header:
            names = next(rows, None)
            if names is None:
                return
            indices = [_column_index(names, c, path) for c in columns]
        else:
            indices = [int(c) for c in columns]
        needed = max(indices) + 1
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < needed:
                raise UserError(
                    f"{path}:{rows.line_num}: malformed row, {len(row)} tab-separated fields where {needed} are "
                    f"needed; fix or delete that line"
                )
            yield rows.line_num, [row[i] for i in indices]


def _column_index(header: Sequence[str], column: str | int, path: Path) -> int:
    if isinstance(column, int):
        return column
    stripped = [h.strip() for h in header]
    if column not in stripped:
        raise UserError(f"{path}:1: header has no column {column!r} (found {stripped})")
    return stripped.index(column)


@dataclass(frozen=True)
class Unlabelled:
    """One test split: GLUE's row ids (what a leaderboard file is keyed by) and the texts."""

    ids: list[str]
    texts: list[tuple[str, ...]]
    source: str

    def as_examples(self) -> Examples:
        """The shape `batching.encode` takes; the labels are placeholders nobody reads."""
        return Examples(texts=self.texts, labels=[0] * len(self.texts), source=self.source)


def unlabelled_layout(task: Mapping[str, Any]) -> Mapping[str, Any]:
    """The task's `test:` block, or an error saying that it has none."""
    layout = task.get("test")
    if not layout or not (layout.get("files") or layout.get("hub_splits")):
        raise UserError(f"task '{task['name']}' has no test split configured (task.test.files or hub_splits); "
                        f"predict on its dev set with --split dev, or add a test: block to its task file")
    return layout


def unlabelled_names(task: Mapping[str, Any]) -> list[str]:
    """The leaderboard names of the task's test sets (SST-2; MNLI-m, MNLI-mm, AX)."""
    layout = unlabelled_layout(task)
    return list(layout.get("files") or layout["hub_splits"])


def load_test_splits(task: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> dict[str, Unlabelled]:
    """GLUE's unlabelled test split(s) of `task`, keyed by leaderboard file name (SST-2, MNLI-m, AX)."""
    layout = unlabelled_layout(task)
    glue_dir = task_glue_dir(task, data_cfg)
    splits = _load_hub_test(task, layout) if glue_dir is None else _load_local_test(task, layout, glue_dir)
    for name, rows in splits.items():
        _require_rows(task, f"the test set {name}", rows)
    return splits


def _load_local_test(task: Mapping[str, Any], layout: Mapping[str, Any], glue_dir: Path) -> dict[str, Unlabelled]:
    """Test splits from the task's GLUE folder: `task.test.files`, each with its index column."""
    if not layout.get("files"):
        raise UserError(f"task '{task['name']}' names no local test files (task.test.files); "
                        f"unset data.dir and ${GLUE_DIR_ENV} to read its test sets from the hub, or use --split dev")
    splits = {}
    for name, file in layout["files"].items():
        path = (glue_dir / task["glue_dir"] / file).resolve()
        if not path.is_file():
            raise UserError(
                f"task '{task['name']}': missing test file {path} (GLUE's layout, under data.dir / ${GLUE_DIR_ENV}="
                f"{glue_dir}); put it there, point --data-dir at a folder that has {task['glue_dir']}/{file}, or use --split dev"
            )
        rows = list(_tsv_rows(path, True, [layout["index_column"], *layout["text_columns"]]))
        splits[name] = Unlabelled(ids=[r[0].strip() for _, r in rows], texts=[tuple(r[1:]) for _, r in rows], source=str(path))
    return splits


def load_from_hub(task: Mapping[str, Any]) -> TaskData:
    """Load a task from its `datasets` dataset (GLUE's unless `hub.dataset` names another)."""
    hub = task.get("hub")
    config = hub.get("config") if hub else None
    loaded = _hub_dataset(task, config)

    def convert(split: str) -> Examples:
        table = _hub_split(task, loaded, config, split)
        where = _where(task, config, split)
        return Examples(texts=_hub_texts(table, hub, where), labels=_hub_labels(task, table, where), source=where)

    return TaskData(train=convert(hub.get("train_split") or "train"), dev={k: convert(v) for k, v in hub["dev_splits"].items()})


def _where(task: Mapping[str, Any], config: str | None, split: str | None = None) -> str:
    """How messages and `Examples.source` name a dataset (`nyu-mll/glue/sst2`) or one of its splits (`...:train`)."""
    return f"{dataset_name(task)}{f'/{config}' if config else ''}{f':{split}' if split else ''}"


def _hub_labels(task: Mapping[str, Any], table, where: str) -> list[float] | list[int]:
    """A split's labels in the task's label order.

    A class column of the dataset's own (`ClassLabel`: ids with names) is read by name, so a task
    whose `labels` (or `label_names`) list the classes in another order still gets each row right;
    plain integers (and whole numbers a column holds as floats, 1.0) are class ids in `labels`'
    order, unless the labels are themselves integers
    (`labels: [1, 2, 3, 4, 5]`, a review's stars), when an integer is the label of that value, as
    the TSV reader reads its text; strings are looked up in `labels`, as the TSV reader does. A
    label outside the task's classes (-1: a test split has none) is an error naming the split,
    never a silent wrong class: read as positions, stars 1..5 had put each row one class up and
    refused the five-star rows as "no class id in 0..4 nor one of [1, 2, 3, 4, 5]"."""
    column = (task.get("hub") or {}).get("label_column") or "label"
    if column not in table.column_names:
        raise UserError(f"{where}: no label column {column!r} (found {table.column_names}); set task.hub.label_column")
    values = table[column]
    if is_regression(task):
        try:
            scores = [float(v) for v in values]
        except (TypeError, ValueError):
            raise UserError(f"{where}: the labels in {column!r} are not all numbers; the task is a regression (labels: null)") from None
        bad = next((i for i, score in enumerate(scores) if not math.isfinite(score)), None)
        if bad is not None:
            raise UserError(f"{where}: row {bad}'s label in {column!r} is {scores[bad]}, not a finite number")
        return scores
    classes = getattr(table.features.get(column), "names", None)
    ids, written, read_label = list(range(len(task["labels"]))), class_labels(task), _label_reader(task)  # once a split, not a row
    if classes is not None:
        ours = {name: i for i, name in enumerate(label_names(task))} | {label: i for i, label in enumerate(written)}
        missing = [name for name in classes if name not in ours]
        if missing:
            raise UserError(f"{where}: the dataset's classes are {list(classes)}; task.labels or task.label_names must name "
                            f"each of them (missing: {missing})")
        ids = [ours[name] for name in classes]
    # integer labels are read as their text, as the TSV reader reads them: "01" is not 1
    by_value = {label: i for i, label in enumerate(written)} if classes is None and labels_are_integers(task) else None
    labels = []
    for row, value in enumerate(values):
        if isinstance(value, float) and value.is_integer():  # a column saved as floats (numpy's 1.0): the whole number it holds
            value = int(value)
        if isinstance(value, bool):  # a CSV column of true/false reads as booleans, and True as class id 1 whatever the labels' order
            labels.append(_boolean_label(value, task, written, f"{where}, row {row}"))
        elif isinstance(value, str):
            labels.append(read_label(value, f"{where}, row {row}"))
        elif isinstance(value, int) and by_value is not None and str(value) in by_value:
            labels.append(by_value[str(value)])
        elif isinstance(value, int) and by_value is None and 0 <= value < len(ids):
            labels.append(ids[value])
        else:
            wanted = f"not one of {list(task['labels'])}" if by_value is not None else \
                f"no class id in 0..{len(ids) - 1} nor one of {list(task['labels'])}"
            raise UserError(f"{where}, row {row}: label {value!r} is {wanted} (a test split's -1 means it has no labels; "
                            "score on a labelled split)")
    return labels


def _boolean_label(value: bool, task: Mapping[str, Any], written: list[str], where: str) -> int:
    """A label the dataset holds as a boolean (a CSV column of true/false) is the class whose label
    (`written`: the task's, as `class_labels` gives them) reads 'true' or 'false', in any case,
    wherever it stands in `labels`."""
    matches = [i for i, label in enumerate(written) if label.strip().lower() == str(value).lower()]
    if len(matches) != 1:
        raise UserError(f"{where}: label {value} is a boolean (the column holds true/false); task.labels must name "
                        f"'true' and 'false' once each (it is {list(task['labels'])})")
    return matches[0]


def _load_hub_test(task: Mapping[str, Any], layout: Mapping[str, Any]) -> dict[str, Unlabelled]:
    """Test splits from the hub: `split` in the task's hub config, or `config/split` (MNLI's AX)."""
    hub = task.get("hub")
    if not hub or not layout.get("hub_splits"):
        where = f"point {POINT_AT_DATA} at a folder that has {task['glue_dir']}/" if task.get("glue_dir") else "name them there"
        raise UserError(f"task '{task['name']}' has no hub test splits (task.hub / task.test.hub_splits) and no local "
                        f"folder is set; {where}")
    loaded: dict[str, Any] = {}
    splits = {}
    for name, place in layout["hub_splits"].items():
        config, _, split = place.rpartition("/")
        config = config or hub.get("config")
        if config not in loaded:
            loaded[config] = _hub_dataset(task, config)
        table = _hub_split(task, loaded[config], config, split)
        where = _where(task, config, split)
        # GLUE's test rows carry their leaderboard id in `idx`; another dataset's are numbered in order
        ids = table["idx"] if "idx" in table.column_names else range(len(table))
        splits[name] = Unlabelled(ids=[str(i) for i in ids], texts=_hub_texts(table, hub, where), source=where)
    return splits


def _hub_texts(table, hub: Mapping[str, Any], where: str) -> list[tuple[str, ...]]:
    """A split's inputs, one tuple of the task's text columns per row (the dataset's own column names)."""
    missing = [column for column in hub["text_columns"] if column not in table.column_names]
    if missing:
        raise UserError(f"{where}: no column {missing[0]!r} (found {table.column_names}); set task.hub.text_columns")
    rows = list(zip(*(table[column] for column in hub["text_columns"])))
    for row, texts in enumerate(rows):  # an empty CSV cell arrives as None, which the tokenizer cannot take
        for column, text in zip(hub["text_columns"], texts):
            if text is None:
                raise UserError(f"{where}, row {row}: column {column!r} holds None, not text; fill or delete that row")
            if not isinstance(text, str):  # a CSV column of numbers alone reads as numbers, whose str() may not be the text written
                raise UserError(f"{where}, row {row}: column {column!r} holds {text!r} ({type(text).__name__}), not text; "
                                "the dataset must store this column as strings (e.g. JSON lines with quoted values)")
    return rows


def _dataset_location(name: str) -> str:
    """What `datasets.load_dataset` is given: a hub id as it is, a local folder with `~` expanded."""
    return str(Path(name).expanduser().resolve()) if looks_local(name) else name


def _pinned(task: Mapping[str, Any]) -> dict[str, str]:
    """`task.hub.revision` as datasets' `revision` argument (none where it is null or absent). A
    dataset on the hub can change under its id, as GLUE's did when it moved to `nyu-mll/glue`; a
    pinned branch, tag or commit keeps a rerun on the same rows. A local folder has one version: a
    revision for it is refused rather than ignored."""
    revision = task["hub"].get("revision")
    if revision is None:
        return {}
    if looks_local(dataset_name(task)):
        raise UserError(f"task '{task['name']}': task.hub.revision={revision} picks a version of a dataset on the hub, but "
                        f"{dataset_name(task)} is a local folder, which has one; leave task.hub.revision unset")
    return {"revision": str(revision)}


def _hub_dataset(task: Mapping[str, Any], config: str | None):
    """The task's dataset (every split), or a one-line error saying how to point the tool at data."""
    if not task.get("hub"):  # a user's own TSV task (task.hub: null) has only its folder
        raise UserError(f"task '{task['name']}' has no dataset (task.hub is null) and no local folder is set; "
                        f"point {POINT_AT_DATA} at a folder that has {task['glue_dir']}/")
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a hard dependency
        raise UserError(f"the 'datasets' package is needed to load '{task['name']}' from the hub") from exc
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # its retries would print 5 warnings
    pinned = _pinned(task)
    try:
        return datasets.load_dataset(_dataset_location(dataset_name(task)), config, **pinned)
    except Exception as exc:  # network, missing cache, unknown config: all the same to the user
        reason = first_line(exc)
        what = _where(task, config)
        if not is_glue(task):
            raise UserError(f"task '{task['name']}': the dataset {what} could not be loaded ({reason}); set task.hub.dataset "
                            "to a hub id or to a local folder of CSV / JSON / Parquet files named by split (train.csv, ...)") from None
        raise UserError(
            f"task '{task['name']}': no local GLUE folder is set (data.dir / ${GLUE_DIR_ENV}) and the hub "
            f"dataset {what} could not be loaded ({reason}); download the "
            f"GLUE TSVs and point {POINT_AT_DATA} at a folder that has {task['glue_dir']}/"
        ) from None


def _hub_split(task: Mapping[str, Any], loaded, config: str | None, split: str):
    if split not in loaded:
        raise UserError(f"task '{task['name']}': dataset {_where(task, config)} has no split '{split}' (has {list(loaded)})")
    return loaded[split]
