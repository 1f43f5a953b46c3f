"""Stopping on Ctrl-C or SIGTERM without losing steps: the one record that a stop was asked for.

A KeyboardInterrupt raised mid-step leaves nothing consistent to save, so a run would lose every
step since its last checkpoint, and a sweep's launcher that dies at once kills its worker
processes mid-step too. Inside `deferred`, the first signal is only recorded in `requested`; the
work checks it where stopping is safe: a training loop after each step (Checkpointer.maybe_save,
which saves a checkpoint there), a sweep before each job. A second signal stops at once. Blocks
nest (a sweep around its jobs' training): they share the one record.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger(__name__)
requested: int | None = None  # the signal that asked for a stop, inside the outermost block
# (sweep dir, signal) of a sweep job this process stopped: the sweep's later jobs here do not
# start. Kept here, not in hydra_entry: joblib's workers receive the job function pickled by
# value, with a fresh copy of its own module's globals for every job.
stopped_sweep: tuple[str, int] | None = None
_depth = 0


def _at_once(number: int) -> object:
    return signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL


@contextlib.contextmanager
def deferred(what_happens: str) -> Iterator[None]:
    """Record the first Ctrl-C or SIGTERM in `requested` (logging `what_happens` next) instead of
    stopping; a second one stops at once. Nothing changes off the main thread (signals reach only
    that one) or for a signal the process was started ignoring (a script's background job
    ignores SIGINT)."""
    global requested, _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    handled = [number for number in STOP_SIGNALS if previous[number] is not signal.SIG_IGN]

    def ask(number: int, frame: object) -> None:
        global requested
        requested = number
        for each in handled:
            signal.signal(each, _at_once(each))
        log.warning("%s: %s (again to stop at once)", signal.Signals(number).name, what_happens)

    if _depth == 0:
        requested = None
    for number in handled:
        signal.signal(number, ask if requested is None else _at_once(number))
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 or requested is None:  # once asked, the outer block's handlers stay "at once"
            for number in handled:
                signal.signal(number, previous[number])
        if _depth == 0:
            requested = None  # a later command in this process (a test's) starts afresh
