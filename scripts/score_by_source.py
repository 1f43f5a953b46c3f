"""A finished run's score on the rows it was scored on, split by where each row comes from: the
`genre` column of GLUE's STS-B (and MNLI) files, e.g. STS-B's captions, news and forum pairs.

    GLUE_DIR=../shared/glue python scripts/score_by_source.py RUN_DIR [RUN_DIR ...] [--column genre] [--in-train | --seen-in TASK]

For runs scored on one split: STS-B's, and MNLI's held-out (`data.holdout`) runs.

Why: STS-B's dev set and its training split mix the sources differently (dev: 42% captions, 33%
news, 25% forums; train: 35%, 57%, 8%), so rows held out of the training split (`data.holdout`)
weigh the sources unlike dev. If one method's score differs between dev and held-out rows, the
per-source scores say whether that follows the mix or holds within each source. `--column filename`
splits finer (STS-B's dev set has two files its training split lacks: answers-forums and
track5.en-en); `--in-train` scores two groups instead, the rows whose source (in `--column`) the
training split also holds and the rows whose source it does not, since a gap between two methods
may follow the sources they trained on rather than the genre. `--seen-in TASK` scores two groups
by another task's training split: the rows with a sentence that split holds (case, punctuation
and spacing aside) and the rest. A mask learnt on STS-B and scored on MRPC (`method=transfer`)
has seen sentences of 63 of MRPC's 408 dev pairs (48 as the same pair, with a similarity score),
since STS-B's MSRpar pairs come from MRPC's corpus: its score on the rest is the one free of
that. Each group also gets every metric of the task and, for a classification task, the share of
rows given each answer (`all_metrics`, `answer_shares`).

Each run's scored rows (its dev rows, or its held-out rows) are predicted again as `prune-cli
predict --split dev` predicts them, and the whole-split metric recomputed from those predictions must equal the run's own
metrics.json figure, or the script stops: the per-source figures are then the run's own. Prints
one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import OmegaConf

from prune_cli import data, rundir
from prune_cli.errors import UserError, script_entry
from prune_cli.metrics import task_metrics
from prune_cli.predictions import predict_scored_rows, task_of
from prune_cli.runner import stored_config
from prune_cli.training import metric_key


IN_TRAIN = {True: "in-train", False: "not-in-train"}  # the two groups of --in-train


# source_of_texts' answers, by (task folder, layout, column): a call with many runs of one task
# reads its train.tsv (STS-B: 5,749 rows; MNLI: 393k) once, not once a run
_SOURCES_READ: dict[tuple[str, str, str], tuple[dict[tuple[str, ...], str], set[str]]] = {}


def source_of_texts(task: dict, glue_dir: Path, column: str) -> tuple[dict[tuple[str, ...], str], set[str]]:
    """{a row's texts: its `column` value} over the task's train and dev files (held-out rows are
    training rows), read by the tool's own GLUE reader with that column added as a last text field;
    and the `column` values the training split holds. Read once per task folder and column."""
    layout = {**task["tsv"], "text_columns": [*task["tsv"]["text_columns"], column]}
    folder = glue_dir / task["glue_dir"]
    key = (str(folder.resolve()), json.dumps(layout, sort_keys=True), column)
    if key in _SOURCES_READ:
        return _SOURCES_READ[key]
    sources: dict[tuple[str, ...], str] = {}
    in_train: set[str] = set()
    for path in [folder / "train.tsv", *sorted(folder.glob("dev*.tsv"))]:  # MNLI: dev_matched.tsv, dev_mismatched.tsv
        try:
            rows = data.read_glue_tsv(path, {**task, "tsv": layout})
        except UserError as error:  # a file without that column (SST-2's name no source): one line, no traceback
            raise SystemExit(str(error)) from None
        for *texts, source in rows.texts:
            sources.setdefault(tuple(texts), source)
            if path.name == "train.tsv":
                in_train.add(source)
    _SOURCES_READ[key] = sources, in_train
    return sources, in_train


def seen_label(task_name: str, seen: bool) -> str:
    """The group name of `--seen-in`: rows with a sentence of that task's training split, or none."""
    return f"{'seen' if seen else 'unseen'} in {task_name} train"


def normalised(text: str) -> str:
    """A sentence as compared across tasks' files: lower case, words only (GLUE's files quote and
    space the same sentence differently)."""
    return " ".join(re.findall(r"\w+", text.lower()))


_TRAIN_SENTENCES: dict[tuple[str, str], set[str]] = {}


def train_sentences(task_name: str, glue_dir: Path) -> set[str]:
    """Every sentence of a task's training split in `glue_dir`, normalised; read once per task."""
    key = (task_name, str(glue_dir))
    if key not in _TRAIN_SENTENCES:
        from prune_cli.config import compose

        task = OmegaConf.to_container(compose([f"task={task_name}"]).task, resolve=True)
        rows = data.read_glue_tsv(glue_dir / task["glue_dir"] / "train.tsv", task)
        _TRAIN_SENTENCES[key] = {normalised(text) for texts in rows.texts for text in texts}
    return _TRAIN_SENTENCES[key]


class ScoredRows(NamedTuple):
    """One run's scored rows, predicted again: what `by_source` reports on, and what
    scripts/bootstrap_gap.py resamples. (A NamedTuple: tests load this script without
    registering it as a module, which a dataclass needs.)"""

    metrics: dict  # the run's metrics.json
    key: str  # the split key the run was scored on ("dev", "holdout")
    metric: str  # the task's main metric, as task_metrics names it
    texts: list[tuple[str, ...]]
    predictions: np.ndarray
    labels: np.ndarray
    source: np.ndarray  # each row's source (or, with in_train, its group)
    whole: float  # the metric over every row, checked against metrics.json
    names: tuple[str, ...]  # every metric the task reports (MRPC: f1, accuracy)


def scored_rows(run_dir: Path, column: str | None, in_train: bool = False, seen_in: str | None = None) -> ScoredRows:
    """The run's scored rows, its fresh predictions for them, and each row's source (or, with
    `in_train`, group: sources the training split holds and sources it lacks; with `seen_in`,
    rows with a sentence of that task's training split and rows without; with no `column`,
    '' for every row, for tasks whose files name no source, e.g. SST-2); stops unless the
    predictions give the run's own metrics.json figure."""
    cfg = stored_config(run_dir)
    task = task_of(cfg)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    glue_dir = data.resolve_glue_dir(data_cfg.get("dir"))
    if glue_dir is None or not data.is_glue(task):
        raise SystemExit(f"{run_dir}: needs the local GLUE folder (GLUE_DIR or data.dir) of a GLUE task")
    keys = data.scoring_keys(task, data_cfg)
    if len(keys) != 1:  # MNLI's two dev sets would need a table each; its held-out runs have one
        raise SystemExit(f"{run_dir}: scored on {len(keys)} splits ({', '.join(keys)}); this script reads runs scored on one")
    (key,) = keys
    rows, predictions = predict_scored_rows(run_dir)[key]
    labels = np.array(rows.labels)
    metrics = rundir.load_metrics(run_dir)
    name = next(n for n in task["metrics"] if metric_key(n, key) == metrics["main_metric"])
    whole = task_metrics([name], predictions, labels)[name]
    if abs(whole - metrics["main_metric_value"]) > 1e-6:
        raise SystemExit(f"{run_dir}: its rows predict to {name} {whole}, not metrics.json's {metrics['main_metric_value']}")
    texts = [tuple(t) for t in rows.texts]
    if seen_in is not None:
        try:
            known = train_sentences(seen_in, glue_dir)
        except UserError as error:
            raise SystemExit(str(error)) from None
        row_sources = [seen_label(seen_in, any(normalised(text) in known for text in row)) for row in texts]
    elif column is None:
        row_sources = [""] * len(texts)
    else:
        sources, train_sources = source_of_texts(task, glue_dir, column)
        row_sources = [sources.get(t, "?") for t in texts]
        if in_train:
            row_sources = [s if s == "?" else IN_TRAIN[s in train_sources] for s in row_sources]
    return ScoredRows(metrics, key, name, texts, predictions, labels, np.array(row_sources), whole, tuple(task["metrics"]))


def by_source(run_dir: Path, column: str | None, in_train: bool = False, seen_in: str | None = None) -> dict:
    """The run's main metric per source (or, with `in_train` or `seen_in`, per group), with the row
    counts, from a fresh prediction of its rows."""
    scored = scored_rows(run_dir, column, in_train, seen_in)
    metrics, name, source = scored.metrics, scored.metric, scored.source
    predictions, labels = scored.predictions, scored.labels
    groups = sorted(set(source))
    # every metric of the task per group (the main one is `by_source`), and for a classification
    # task the share of rows given each answer: an F1 can rise by answering the majority class
    # more often, not by telling the classes apart better
    per_group = {s: {n: round(v, 4) for n, v in task_metrics(list(scored.names), predictions[source == s], labels[source == s]).items()}
                 for s in groups}
    return {
        "run": str(run_dir), "task": metrics["task"], "method": metrics["method"], "tag": metrics.get("tag"),
        "seed": metrics["seed"], "steps": metrics["steps"], "scored_on": scored.key, "metric": name,
        "all": round(scored.whole, 4),
        "column": column, "in_train": in_train, **({"seen_in": seen_in} if seen_in else {}),
        "rows": dict(sorted(Counter(source.tolist()).items())),
        "by_source": {s: per_group[s][name] for s in groups},
        "all_metrics": per_group,
        **({"answer_shares": {s: {str(a): round(float(np.mean(predictions[source == s] == a)), 4) for a in np.unique(predictions)}
                              for s in groups}} if np.issubdtype(predictions.dtype, np.integer) else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--column", default="genre", help="the GLUE file column that names each row's source")
    parser.add_argument("--in-train", action="store_true",
                        help="score two groups: rows whose source the training split holds, and the rest")
    parser.add_argument("--seen-in", metavar="TASK",
                        help="score two groups instead: rows with a sentence of TASK's training split (stsb, say), and the rest")
    args = parser.parse_args()
    if args.seen_in and args.in_train:
        parser.error("--seen-in and --in-train group the rows two ways; give one")
    for run_dir in args.run_dirs:
        column = None if args.seen_in else args.column
        print(json.dumps(by_source(run_dir, column, args.in_train, args.seen_in)), flush=True)


if __name__ == "__main__":
    script_entry(main)
