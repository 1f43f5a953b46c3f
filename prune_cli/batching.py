"""Tokenise once, then serve length-bucketed batches padded only to their own longest row.

Why: on a CPU, padding is pure waste. SST-2 sentences average ~13 tokens but the longest is 66;
padding every batch to `max_seq_length` would multiply the cost several times. Training batches
are drawn from shuffled pools sorted by length (random order, little padding); evaluation batches
are fully sorted, and predictions are put back in dataset order before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from prune_cli.data import Examples

POOL_BATCHES = 50  # a training pool is this many batches, sorted by length inside the pool


@dataclass(frozen=True)
class Encoded:
    """A tokenised split: one int array per example and field, plus labels."""

    fields: dict[str, list[np.ndarray]]
    labels: torch.Tensor
    pad_ids: dict[str, int]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.fields["input_ids"]), dtype=np.int64)


def encode(examples: Examples, tokenizer, max_seq_length: int, regression: bool) -> Encoded:
    """Tokenise a split in one batched call (fast tokenisers parallelise it internally)."""
    firsts = [t[0] for t in examples.texts]
    seconds = [t[1] for t in examples.texts] if examples.texts and len(examples.texts[0]) > 1 else None
    out = tokenizer(firsts, seconds, truncation=True, max_length=max_seq_length)
    keep = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in out]
    fields = {k: [np.asarray(v, dtype=np.int64) for v in out[k]] for k in keep}
    pad_ids = {"input_ids": int(tokenizer.pad_token_id or 0), "token_type_ids": 0, "attention_mask": 0}
    dtype = torch.float32 if regression else torch.long
    return Encoded(fields=fields, labels=torch.tensor(examples.labels, dtype=dtype), pad_ids=pad_ids)


def collate(encoded: Encoded, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """Pad the rows at `indices` to their longest member."""
    longest = max(len(encoded.fields["input_ids"][i]) for i in indices)
    batch: dict[str, torch.Tensor] = {}
    for name, rows in encoded.fields.items():
        block = np.full((len(indices), longest), encoded.pad_ids[name], dtype=np.int64)
        for r, i in enumerate(indices):
            block[r, : len(rows[i])] = rows[i]
        batch[name] = torch.from_numpy(block)
    batch["labels"] = encoded.labels[torch.from_numpy(np.asarray(indices, dtype=np.int64))]
    return batch


def training_batches(encoded: Encoded, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of index batches: shuffled, length-sorted within pools, pool order shuffled."""
    order = rng.permutation(len(encoded))
    lengths = encoded.lengths
    pool = batch_size * POOL_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(encoded: Encoded, batch_size: int) -> list[np.ndarray]:
    """Deterministic, fully length-sorted batches (the order never depends on a seed)."""
    order = np.argsort(encoded.lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def iterate(encoded: Encoded, index_batches: list[np.ndarray]) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    for indices in index_batches:
        yield indices, collate(encoded, indices)
