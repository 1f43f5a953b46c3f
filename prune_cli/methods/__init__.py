"""Method registry: `method.algorithm` in a config names one entry here.

A test checks this dict against `configs/method/*.yaml`, so a method cannot exist in one place
and not the other.
"""

from __future__ import annotations

from prune_cli.methods import adapt_by_pruning, baselines
from prune_cli.methods.base import Method, MethodResult

METHODS: dict[str, Method] = {
    "adapt_by_pruning": adapt_by_pruning.run,
    "random": baselines.random_mask,
    "magnitude": baselines.magnitude,
    "gmp": baselines.gmp,
    "imp": baselines.imp,
    "finetune": baselines.full_finetune,
    "feature_extraction": baselines.feature_extraction,
    "transfer": baselines.transfer,
}
DENSE = {"finetune", "feature_extraction"}  # references: they ignore `sparsity`

__all__ = ["DENSE", "METHODS", "Method", "MethodResult"]
