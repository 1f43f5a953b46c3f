"""The one signature every method implements, and what it hands back to the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from prune_cli.training import RunContext


@dataclass
class MethodResult:
    """What a method found.

    `masks` are boolean tensors over the maskable weights (None for dense methods). The runner
    scores `head` on the pretrained weights times `masks`, so the reported score always uses
    the surviving weights at their pretrained values. `extra` holds method-specific figures that
    go into metrics.json (e.g. how the target sparsity was reached, recovered connections).
    """

    masks: dict[str, torch.Tensor] | None
    head: nn.Module
    extra: dict[str, float | int | str | bool] = field(default_factory=dict)


Method = Callable[[RunContext], MethodResult]
