"""The task head from the paper: a learned softmax mix of every layer's [CLS] vector, then an MLP.

Peters et al. (2019) showed the layer mix beats the last layer alone; the paper uses it for all
methods, and so do we, so that methods differ only in which encoder weights survive. The head is
never pruned.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerMixHead(nn.Module):
    """softmax(w) · [CLS_0..CLS_L] -> Linear(H, H) -> ReLU -> Linear(H, outputs)."""

    def __init__(self, hidden_size: int, num_hidden_states: int, num_outputs: int, dropout: float = 0.0):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(num_hidden_states))
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, num_outputs),
        )

    def forward(self, hidden_states: tuple[torch.Tensor, ...]) -> torch.Tensor:
        cls = torch.stack([h[:, 0] for h in hidden_states], dim=0)  # (layers, batch, hidden)
        weights = torch.softmax(self.layer_logits, dim=0).to(cls.dtype)
        pooled = torch.einsum("l,lbh->bh", weights, cls)
        return self.mlp(pooled)
