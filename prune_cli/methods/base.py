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
    the surviving weights at their pretrained values; only `weights` (dense fine-tuning, which
    is a reference, not a pruning method) replaces the pretrained values. `extra` holds method-specific figures that
    go into metrics.json (e.g. how the target sparsity was reached, recovered connections).
    """

    masks: dict[str, torch.Tensor] | None
    head: nn.Module
    extra: dict[str, float | int | str | bool] = field(default_factory=dict)
    weights: dict[str, torch.Tensor] | None = None  # trained encoder weights (finetune only)
    # imp's rounds before the last: each round's level and its mask, packed (`mask_format.pack_masks`)
    earlier_masks: list[tuple[float, dict[str, torch.Tensor]]] = field(default_factory=list)


Method = Callable[[RunContext], MethodResult]
