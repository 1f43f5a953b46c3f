"""One process at a time in a run directory or a sweep folder.

Without it, `adapt --resume RUN` on a run that is still going (started in another terminal, under
nohup, by a scheduler) trained a second copy into the same folder: both wrote its checkpoint, the
first to finish removed it under the other, and the last writer's files won. `adapt --resume
SWEEP` on a sweep still running ran its jobs twice the same way.

The lock is `flock` on the folder itself: nothing is written into the folder (a run directory
holds only its artifacts), and the kernel drops the lock when its process ends, however it ends,
so a killed run never leaves a stale lock to clear by hand. Within one process the lock is
re-entrant (`adapt --resume` holds its run before the run itself asks). Where the platform or the
file system cannot lock (Windows, some network mounts), runs go on unlocked, as they did before.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Callable, Iterator

from prune_cli.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, tuple[int, int]] = {}  # folder -> (open descriptor holding its lock, holds taken in this process)
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)  # flock's "another holds it" (EACCES: fcntl-emulated locks)


class FolderInUse(UserError):
    """Another process holds the folder. A job refused with it must leave the folder alone: no
    failed.json, no clean-up, since what is there is the other process's work in progress. Its
    exit code is sysexits' EX_TEMPFAIL, not a bad input's 2: nothing is wrong with the command, it
    only cannot run now, so a script or scheduler can tell "try again later" from "fix this"."""

    exit_code = 75


def _open_locked(folder: Path) -> int | None:
    """A descriptor of `folder` holding its exclusive lock; None where it cannot be locked here;
    BlockingIOError where another process holds it."""
    if fcntl is None:
        return None
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None  # a folder this user cannot open for reading: not lockable here, and whatever is wrong is said by its first write
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(descriptor)
        if exc.errno in _BUSY:
            raise BlockingIOError(exc.errno, exc.strerror) from None
        return None  # the file system does not lock (ENOLCK, EINVAL): go on unlocked
    return descriptor


def hold(folder: Path, in_use: str) -> Callable[[], None]:
    """Take `folder` (which must exist) for this process; returns what gives it back. Raises
    FolderInUse, with `in_use` as its message, where another process has it."""
    key = folder.resolve()
    if key in _held:
        descriptor, holds = _held[key]
        _held[key] = (descriptor, holds + 1)
    else:
        try:
            descriptor = _open_locked(key)
        except BlockingIOError:
            raise FolderInUse(in_use) from None
        if descriptor is None:
            return lambda: None
        _held[key] = (descriptor, 1)

    def give_back() -> None:
        descriptor, holds = _held.pop(key)
        if holds > 1:
            _held[key] = (descriptor, holds - 1)
        else:
            os.close(descriptor)  # closing the last descriptor drops the lock
    return give_back


@contextlib.contextmanager
def held(folder: Path, in_use: str) -> Iterator[None]:
    """`hold` for the length of a block."""
    give_back = hold(folder, in_use)
    try:
        yield
    finally:
        give_back()


def held_elsewhere(folder: Path) -> bool:
    """Whether another process holds `folder` now (a missing folder is held by nobody)."""
    key = folder.resolve()
    if key in _held or not key.is_dir():
        return False
    try:
        descriptor = _open_locked(key)
    except BlockingIOError:
        return True
    if descriptor is not None:
        os.close(descriptor)
    return False
