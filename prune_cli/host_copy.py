"""A copy of a run's training state in host memory, taken fast enough to not hold training up.

A checkpoint must capture the state at the step it belongs to, while training changes those
tensors in place from the next step on. Serialising it there (`torch.save`: pickling, a CRC of
every byte, copies into the zip) took the training thread 0.23 s per save for MiniLM's 281 MiB
on this project's CPU, and 1.9 s at BERT-base's shape on a GPU, where every tensor is first
copied to the host, unpinned and synchronously. A copy is cheaper, and the writer thread
serialises the copy while training goes on:

- from a GPU, a queue of asynchronous copies into pinned host buffers, ordered on the training
  stream before the next step's updates; the writer waits on the events `copy` returns before
  reading them. Pinned memory is slow to allocate, so these buffers are kept from one save to the
  next (keyed by where each tensor sits in the state): the host holds one copy of the
  checkpointed tensors while the run trains.
- on a CPU, a memcpy into fresh memory (0.04-0.07 s for MiniLM's state), let go once written.
  Kept buffers would make that 0.015 s, but they would sit beside every training step's own
  memory, where the serialised state only ever sat beside a save's: the run's peak memory rose
  by 150-280 MiB (7-12%) on 400-step SST-2 runs with MiniLM (docs/performance.md).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

Key = tuple[Any, ...]


class HostCopier:
    """Copies the tensors of a nested state (dicts, lists and tuples of tensors and plain values)
    into host memory (for GPU tensors, pinned buffers reused from the previous copy); plain values
    are deep-copied, so later changes to the state never reach the copy."""

    def __init__(self) -> None:
        self._buffers: dict[Key, torch.Tensor] = {}

    @property
    def held_bytes(self) -> int:
        """Host memory the kept (pinned) buffers hold between saves."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self._buffers.values())

    def copy(self, state: Any) -> tuple[Any, list[torch.cuda.Event]]:
        """The state with every tensor replaced by its host copy, and the events (one per GPU the
        tensors were on, none on a CPU) after which the copies are complete."""
        used: dict[Key, torch.Tensor] = {}
        gpus: set[torch.device] = set()
        copied = self._copy(state, (), used, gpus)
        self._buffers = used  # a buffer no longer in the state (an earlier phase's) is let go
        return copied, [torch.cuda.current_stream(device).record_event() for device in gpus]

    def _copy(self, value: Any, key: Key, used: dict[Key, torch.Tensor], gpus: set[torch.device]) -> Any:
        if isinstance(value, torch.Tensor):
            return self._copy_tensor(value.detach(), key, used, gpus)
        if isinstance(value, dict):
            return {name: self._copy(item, key + (name,), used, gpus) for name, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self._copy(item, key + (index,), used, gpus) for index, item in enumerate(value)]
            if isinstance(value, list):
                return items
            return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
        return copy.deepcopy(value)

    def _copy_tensor(self, tensor: torch.Tensor, key: Key, used: dict[Key, torch.Tensor], gpus: set[torch.device]) -> torch.Tensor:
        if tensor.device.type != "cuda":  # a CPU tensor (or another device's, copied synchronously)
            return tensor.to("cpu", copy=True)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        buffer.copy_(tensor, non_blocking=True)  # queued on the training stream, done at the returned events
        gpus.add(tensor.device)
        used[key] = buffer
        return buffer
