"""GLUE metrics, computed by scikit-learn and SciPy rather than by hand."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from prune_cli.errors import UserError

# scikit-learn and SciPy are imported where a metric is first computed, not with this module: the
# config checks read METRICS (`check_task_metrics`), and importing both cost `show-config` and
# `adapt --dry-run` about a second of their few.


def _classification(name: str, **options: Any) -> Callable[[np.ndarray, np.ndarray], float]:
    """scikit-learn's `name` (accuracy_score, f1_score, ...) of predicted classes against labels."""
    def metric(predictions: np.ndarray, labels: np.ndarray) -> float:
        import sklearn.metrics

        return float(getattr(sklearn.metrics, name)(labels, predictions, **options))

    return metric


def _correlation(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """SciPy's `name` (pearsonr, spearmanr) of predicted scores with labels; a constant prediction
    has no correlation, and scores 0 rather than NaN so reports stay sortable (and metrics.json
    strict JSON). Constant means every value equal, as SciPy tests it: the standard deviation of
    twelve equal float32 scores is 7e-9, not 0, which let a head that answers one score through to
    SciPy's NaN."""
    def metric(predictions: np.ndarray, labels: np.ndarray) -> float:
        import scipy.stats

        if np.ptp(predictions) == 0 or np.ptp(labels) == 0:
            return 0.0
        return float(getattr(scipy.stats, name)(predictions, labels)[0])

    return metric


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _classification("accuracy_score"),
    # F1 where no row is positive, in the labels or the answers: 0, scikit-learn's default, said here so
    # that it does not print its UndefinedMetricWarning (a path into its source) amid the run's output
    "f1": _classification("f1_score", zero_division=0.0),
    "matthews_correlation": _classification("matthews_corrcoef"),
    "pearson": _correlation("pearsonr"),
    "spearmanr": _correlation("spearmanr"),
}


# What each metric scores: classes (ids), two classes (binary F1 of class 1, as GLUE reports MRPC
# and QQP), or scores (a regression task, labels: null).
TAKES = {"accuracy": "classes", "f1": "two classes", "matthews_correlation": "classes",
         "pearson": "regression scores", "spearmanr": "regression scores"}


def check_task_metrics(task: Mapping[str, Any]) -> None:
    """A task's `metrics` and `main_metric`, checked when its config is composed: a name scikit-learn
    has no metric for, a main metric the task does not compute, or a metric of the other kind of
    task (accuracy of regression scores, binary F1 of three classes) would fail only when the first
    dev set is scored, after the training it was meant to score; a correlation of class ids would
    score nothing meaningful."""
    names, main, name = task.get("metrics"), task.get("main_metric"), task["name"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise UserError(f"task '{name}': metrics={names!r} must be a list of different metric names, e.g. metrics: [accuracy]")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"task '{name}': unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    if main not in names:
        raise UserError(f"task '{name}': main_metric={main!r} is not one of its metrics {names}")
    labels = task.get("labels")
    kind = "regression scores" if labels is None else "two classes" if len(labels) == 2 else "classes"
    misfit = [n for n in names if TAKES[n] != kind and not (TAKES[n] == "classes" and kind == "two classes")]
    if misfit:
        raise UserError(f"task '{name}': {misfit[0]} is a metric of {TAKES[misfit[0]]}, but the task "
                        f"{'is a regression (labels: null)' if labels is None else f'has {len(labels)} classes'}")


def task_metrics(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](predictions, labels) for name in names}
