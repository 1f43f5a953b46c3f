"""The task head from the paper: a learned softmax mix of every layer's [CLS] vector, then an MLP.

Peters et al. (2019) showed the layer mix beats the last layer alone; the paper uses it for all
methods, and so do we, so that methods differ only in which encoder weights survive. The head is
never pruned.

`pooling="mean"` mixes each layer's mean over the real (unpadded) tokens instead of its [CLS]
vector: sentence-transformer checkpoints such as all-MiniLM-L6-v2 were trained with mean pooling,
so their [CLS] vector carries less of the sentence than their mean does.
"""

from __future__ import annotations

import torch
from torch import nn


POOLINGS = ("cls", "mean")


class LayerMixHead(nn.Module):
    """softmax(w) · [pool(h_0)..pool(h_L)] -> Linear(H, H) -> ReLU -> Linear(H, outputs); pool: [CLS] or mean."""

    def __init__(self, hidden_size: int, num_hidden_states: int, num_outputs: int, dropout: float = 0.0, pooling: str = "cls"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"head pooling {pooling!r} is not known; choose one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.layer_logits = nn.Parameter(torch.zeros(num_hidden_states))
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_outputs),
        )

    def forward(self, hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attention_mask` (batch, tokens) marks the real tokens for mean pooling (None: all are)."""
        if self.pooling == "cls":
            per_layer = torch.stack([h[:, 0] for h in hidden_states], dim=0)  # (layers, batch, hidden)
        else:
            stacked = torch.stack(hidden_states, dim=0)  # (layers, batch, tokens, hidden)
            if attention_mask is None:
                per_layer = stacked.mean(dim=2)
            else:
                real = attention_mask.to(stacked.dtype)[None, :, :, None]
                per_layer = (stacked * real).sum(dim=2) / real.sum(dim=2).clamp_min(1.0)
        weights = torch.softmax(self.layer_logits, dim=0).to(per_layer.dtype)
        pooled = torch.einsum("l,lbh->bh", weights, per_layer)
        return self.mlp(pooled)
