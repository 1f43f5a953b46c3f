"""The checkpoint's host copy of the training state, and the atomic writer its file goes through."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch

from prune_cli import rundir
from prune_cli.host_copy import HostCopier


def _state(theta: torch.Tensor) -> dict:
    return {"learner": {"theta": list(theta.split([3, 5])), "gamma": 2e-7, "groups": [{"lr": 5e-5, "params": [0, 1]}]},
            "rng": torch.arange(4, dtype=torch.uint8)}


def test_the_copy_holds_the_values_at_the_copy_and_later_changes_never_reach_it():
    theta = torch.arange(8, dtype=torch.float32)
    state = _state(theta)
    copied, ready = HostCopier().copy(state)
    assert ready == []  # nothing on a GPU: the copies are done when copy() returns
    theta.add_(100.0)  # training's next step, in place
    state["learner"]["groups"][0]["lr"] = 1.0  # a scheduler's step, on the state dict's own objects
    state["learner"]["groups"][0]["params"].append(2)
    assert [t.tolist() for t in copied["learner"]["theta"]] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0, 6.0, 7.0]]
    assert copied["learner"]["groups"] == [{"lr": 5e-5, "params": [0, 1]}] and copied["learner"]["gamma"] == 2e-7
    assert copied["rng"].dtype == torch.uint8 and copied["rng"].tolist() == [0, 1, 2, 3]


def test_a_cpu_copy_is_fresh_memory_that_nothing_keeps():
    """On a CPU the copy is let go with the write: buffers kept between saves would sit beside every
    training step's own memory and raise the run's peak."""
    copier = HostCopier()
    theta = torch.zeros(8)
    first, _ = copier.copy(_state(theta))
    second, _ = copier.copy(_state(theta))
    assert first["learner"]["theta"][0].data_ptr() != second["learner"]["theta"][0].data_ptr()
    assert first["learner"]["theta"][0].data_ptr() != theta.data_ptr() and copier.held_bytes == 0


def test_tuples_and_named_tuples_keep_their_type():
    Pair = collections.namedtuple("Pair", "left right")
    copied, _ = HostCopier().copy({"pair": Pair(torch.ones(1), 3), "betas": (0.9, 0.999)})
    assert isinstance(copied["pair"], Pair) and copied["pair"].right == 3 and copied["betas"] == (0.9, 0.999)


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: copies from a GPU go to pinned buffers")


@needs_gpu
def test_a_gpu_state_is_copied_into_pinned_memory_and_complete_at_the_returned_event():
    theta = torch.arange(1 << 20, dtype=torch.float32, device="cuda")
    copied, ready = HostCopier().copy({"theta": theta})
    assert len(ready) == 1 and copied["theta"].is_pinned() and copied["theta"].device.type == "cpu"
    theta.mul_(0.0)  # queued after the copy on the same stream: it must not reach the copy
    ready[0].synchronize()
    assert torch.equal(copied["theta"], torch.arange(1 << 20, dtype=torch.float32))


@needs_gpu
def test_pinned_buffers_are_reused_from_one_copy_to_the_next_and_let_go_once_out_of_the_state():
    """Reuse is the point (pinned memory is slow to allocate); a tensor whose shape changed gets a
    new buffer, and a buffer an earlier phase's state had is not held for the rest of the run."""
    copier = HostCopier()
    theta = torch.zeros(8, device="cuda")
    first, _ = copier.copy(_state(theta))
    second, ready = copier.copy(_state(theta + 1.0))
    ready[0].synchronize()
    assert [t.data_ptr() for t in first["learner"]["theta"]] == [t.data_ptr() for t in second["learner"]["theta"]]
    assert second["learner"]["theta"][0].tolist() == [1.0, 1.0, 1.0] and copier.held_bytes == 8 * 4
    third, _ = copier.copy({"head": torch.ones(2, 3, device="cuda"), "learner": {"theta": [torch.ones(4, device="cuda")]}})
    assert copier.held_bytes == (6 + 4) * 4


@needs_gpu
def test_the_end_of_training_lets_the_pinned_buffers_go(tmp_path: Path):
    from prune_cli import checkpointing

    saver = checkpointing.Checkpointer(tmp_path, 1, {}, [])
    saver.save("prune", 1, {"theta": torch.ones(1000, device="cuda")})
    saver.wait()
    assert saver._host.held_bytes == 4000
    saver.settle()
    assert saver._host.held_bytes == 0
    assert torch.load(tmp_path / rundir.CHECKPOINT_STATE, weights_only=True)["state"]["theta"].sum().item() == 1000.0


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path: Path):
    target = tmp_path / "state.pt"
    rundir.atomic_write(target, lambda tmp: torch.save({"step": 1}, tmp))

    def half_written(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        rundir.atomic_write(target, half_written)
    assert torch.load(target, weights_only=True) == {"step": 1} and os.listdir(tmp_path) == ["state.pt"]
