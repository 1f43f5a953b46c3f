"""Training checkpoints, so a killed run resumes where it stopped and ends bit-identical.

A method's loops are a fixed sequence of *phases* (adapt-by-pruning: "prune" then "head"; imp:
"imp round 1/4", ..., "head"). Every `checkpoint.every_steps` steps a loop hands the Checkpointer
its phase, the number of steps it has done, and a function returning everything it needs to go on:
trained tensors, optimiser and scheduler state, how many batches its stream has served, plus a
`carry` of what earlier phases produced (a mask, imp's earlier masks). The torch RNG state, the
run's step history and any run-wide state registered with `track` (fp16's loss scale, the run's
clock) are added here.

On `--resume`, the runner loads that state; the method runs from its start, and each phase asks
`take(phase)`: the phase the checkpoint belongs to restores itself from it and continues at the
saved step, while earlier phases see from `pending_phase` that they are already done and take
their results from the carry. Batch order needs no RNG state: a stream re-derives its order from
the seed and skips the batches it already served.

Ctrl-C or SIGTERM while a method trains (inside `stopping.deferred`) does not lose the steps since
the last save: the loop stops after the step it is in, saving a checkpoint there first (a second
one stops at once). The run then continues with `--resume` like a killed one.

The state is one `torch.save` file (nested optimiser state dicts are not flat tensors, so
safetensors does not fit), written atomically, loaded with `weights_only=True`. At the step it
belongs to, the training thread only copies the state to host memory (`host_copy`: from a GPU,
asynchronously into pinned buffers); serialising the copy and writing it to disk (and fsync)
happen on a background thread while training goes on. At BERT-base's size on a GPU a checkpoint
(1.3 GiB) took 17-23% of training at the default cadence when written on the training thread,
and serialising alone still 1.9 s per save there. Only one write is ever in flight: the next
save, a stop, the end of training (however it ends) and a clean finish wait for it, and its error
(a full disk) fails the run at the next save as a synchronous write's would.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from prune_cli import __version__, rundir, stopping
from prune_cli.errors import RunInterrupted, UserError
from prune_cli.host_copy import HostCopier

FORMAT_VERSION = 1
# Identity keys added after checkpoints already existed, which a checkpoint without them is not
# refused for (a run stopped under the earlier prune-cli resumes under this one).
LATER_IDENTITY_KEYS = ("tokenizer_hash", "train_rows_sha256")
# What a mismatch of an identity key means, where its name and two hashes would not say it.
IDENTITY_CHANGES = {
    "train_rows_sha256": "the training rows have changed since the run stopped (its train file was edited or replaced, or "
                         "another copy of the task is read): the steps done were trained on other rows; put the data back as it "
                         "was to resume, or start the run anew",
}

log = logging.getLogger(__name__)


@dataclass
class ResumePoint:
    """Where a checkpoint was taken: `steps_done` steps into `phase`, and that phase's state."""

    phase: str
    steps_done: int
    state: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor]
    tracked: dict[str, Any]


class Checkpointer:
    """Saves a run's training state every few steps and hands it back once on resume."""

    def __init__(self, run_dir: Path | None, every_steps: int, identity: dict[str, Any], history: list[dict]):
        self.run_dir = run_dir
        self.every = int(every_steps or 0) if run_dir is not None else 0
        self.identity = identity  # what must match on resume (base weights hash, task, method, ...)
        self.history = history
        self.pending: ResumePoint | None = None
        self.seconds_spent = 0.0  # what saving cost the training thread: copying the state, and waiting for a previous write
        self.saves = 0
        self.tracked: dict[str, Any] = {}
        self._host = HostCopier()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    def track(self, name: str, stateful: Any) -> None:
        """Run-wide state (beside the RNG) that every checkpoint saves and a resume restores:
        anything with state_dict() / load_state_dict(), such as fp16's loss scaler."""
        self.tracked[name] = stateful

    # -- saving -------------------------------------------------------------------------------
    def due(self, steps_done: int) -> bool:
        return self.every > 0 and steps_done % self.every == 0

    def maybe_save(self, phase: str, steps_done: int, state: Callable[[], dict[str, Any]]) -> None:
        """Save after `steps_done` steps of `phase` if the cadence says so. If Ctrl-C or SIGTERM
        asked for a stop (`stopping.requested`), this step boundary is where the run stops: save
        (where checkpoints are on) and raise RunInterrupted."""
        if stopping.requested is not None:
            if self.every > 0:
                self.save(phase, steps_done, state())
                self.wait()  # on disk before the run says so and exits
                log.warning("stopped after step %d of phase %r; checkpoint saved", steps_done, phase)
            raise RunInterrupted(signum=stopping.requested)
        if self.due(steps_done):
            self.save(phase, steps_done, state())

    def save(self, phase: str, steps_done: int, state: dict[str, Any]) -> None:
        """Copy the state now (training changes its tensors in place from the next step on) and
        serialise and write the copy in the background; `wait` for the write."""
        assert self.run_dir is not None
        started = time.perf_counter()
        self.wait()  # one write in flight at most: it may read pinned buffers this save refills
        payload, copied = self._host.copy({
            "format_version": FORMAT_VERSION,
            "identity": self.identity,
            "phase": phase,
            "steps_done": steps_done,
            "state": state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "tracked": {name: stateful.state_dict() for name, stateful in self.tracked.items()},
        })
        payload["history"] = list(self.history)  # records are appended, never changed: no need to walk them
        self._writer = threading.Thread(target=self._write, args=(payload, copied, phase, steps_done), name="checkpoint-writer")
        self._writer.start()
        self.seconds_spent += time.perf_counter() - started
        self.saves += 1

    def _write(self, payload: dict[str, Any], copied: list[torch.cuda.Event], phase: str, steps_done: int) -> None:
        """The background half of `save`: any error is kept for `wait` to raise on the training thread."""
        assert self.run_dir is not None
        try:
            for event in copied:
                event.synchronize()  # the GPU-to-host copies `save` queued have landed
            rundir.atomic_write(self.run_dir / rundir.CHECKPOINT_STATE, lambda tmp: torch.save(payload, tmp))
            # progress.json is for people and tools watching a run; state.pt alone is authoritative. The
            # prune-cli that wrote it says which recipe a stopped run's method name stood for (recipes.py)
            rundir.write_json(self.run_dir / rundir.CHECKPOINT_PROGRESS,
                              {"phase": phase, "steps_done": steps_done, "versions": {"prune_cli": __version__}})
        except BaseException as error:  # noqa: BLE001 - raised again on the training thread by wait()
            self._write_error = error

    def wait(self) -> None:
        """Block until the checkpoint being written is on disk; raise the error its write met, if any."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        error, self._write_error = self._write_error, None
        if error is not None:
            raise error

    # -- resuming -----------------------------------------------------------------------------
    def load(self) -> ResumePoint | None:
        """Read the run dir's checkpoint (None if the run was killed before its first one)."""
        assert self.run_dir is not None
        path = self.run_dir / rundir.CHECKPOINT_STATE
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same one-line answer
            raise UserError(f"{path} cannot be read ({type(exc).__name__}); delete the checkpoint folder to restart the run from step 0") from None
        if not isinstance(payload, dict):
            raise UserError(f"{path} holds a Python {type(payload).__name__}, not a prune-cli checkpoint; delete the checkpoint folder to "
                            "restart the run from step 0")
        if payload.get("format_version") != FORMAT_VERSION:
            raise UserError(f"{path} has checkpoint format {payload.get('format_version')}, this prune-cli reads {FORMAT_VERSION}")
        for key, expected in self.identity.items():
            if key in LATER_IDENTITY_KEYS and key not in payload["identity"]:
                continue  # a checkpoint written before the key was recorded: nothing to compare
            if payload["identity"].get(key) != expected:
                if key in IDENTITY_CHANGES:
                    raise UserError(f"{path} cannot be resumed: {IDENTITY_CHANGES[key]}")
                raise UserError(
                    f"{path} was written with {key}={payload['identity'].get(key)!r}, this run has {expected!r}; "
                    "the checkpoint belongs to another setup"
                )
        self.history[:] = payload["history"]
        self.pending = ResumePoint(payload["phase"], int(payload["steps_done"]), payload["state"], payload["torch_rng"], payload["cuda_rng"],
                                   payload.get("tracked", {}))  # absent from checkpoints written before track()
        return self.pending

    @property
    def pending_phase(self) -> str | None:
        return self.pending.phase if self.pending is not None else None

    def take(self, phase: str) -> ResumePoint | None:
        """The resume point if it belongs to `phase` (restoring the RNG), once; else None."""
        if self.pending is None or self.pending.phase != phase:
            return None
        point, self.pending = self.pending, None
        torch.set_rng_state(point.torch_rng)
        if point.cuda_rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(point.cuda_rng)
        for name, stateful in self.tracked.items():
            if point.tracked.get(name):  # a disabled GradScaler saves {}, and nothing is to restore
                stateful.load_state_dict(point.tracked[name])
        log.info("resuming phase %r after step %d", point.phase, point.steps_done)
        return point

    def settle(self) -> None:
        """`wait`, where the run is ending anyway (finished, or failed with an error of its own): the
        last write lands before the end is reported, and a failed write is logged, not raised over it.
        The host copy's buffers are let go: evaluation and what follows do not need them."""
        try:
            self.wait()
        except Exception as error:  # noqa: BLE001 - see the docstring
            log.warning("the last checkpoint could not be written: %s", error)
        self._host = HostCopier()

    def finish(self, keep: bool) -> None:
        """A clean finish: the checkpoint has served its purpose unless asked to keep it. Its last
        write is settled first: deleting under it would let it recreate the folder."""
        self.settle()
        if self.run_dir is not None and not keep:
            shutil.rmtree(self.run_dir / rundir.CHECKPOINT, ignore_errors=True)


def disabled() -> Checkpointer:
    """For callers outside a run (benchmarks, tests of a loop): never saves, never resumes."""
    return Checkpointer(None, 0, {}, [])
