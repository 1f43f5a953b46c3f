"""GLUE metrics, computed by scikit-learn and SciPy rather than by hand."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from prune_cli.errors import UserError


def _safe_corr(fn: Callable, predictions: np.ndarray, labels: np.ndarray) -> float:
    # A constant prediction has no correlation; report 0 rather than NaN so reports stay sortable.
    if np.std(predictions) == 0 or np.std(labels) == 0:
        return 0.0
    return float(fn(predictions, labels)[0])


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": lambda p, y: float(accuracy_score(y, p)),
    "f1": lambda p, y: float(f1_score(y, p)),
    "matthews_correlation": lambda p, y: float(matthews_corrcoef(y, p)),
    "pearson": lambda p, y: _safe_corr(pearsonr, p, y),
    "spearmanr": lambda p, y: _safe_corr(spearmanr, p, y),
}


def task_metrics(names: Sequence[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](predictions, labels) for name in names}
