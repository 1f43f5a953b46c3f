"""The exceptions the CLI shows as one line instead of a traceback.

Everything raised as `UserError` ("the user asked for something we cannot do") is shown as a
single line with exit code 2 (1 for `ScoresDiffer`, a check that found a difference);
`RunInterrupted` (Ctrl-C or SIGTERM during a run) as a single line, the process then ending as
that signal would have ended it. Anything else is a bug and
keeps its traceback (or shows it with `--debug`). The files of scripts/ end the same way through
`script_entry`, and refuse a count out of range through `at_least`.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from typing import Callable

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # the disk is full, or the user's quota on it is


def first_line(exc: BaseException) -> str:
    """A library's exception as one line for a UserError: its message's first line, or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def yaml_problem(exc: BaseException) -> str:
    """A YAML parser's error as one line: the problem and its line. Its message's first line is only the
    context ("while parsing a flow sequence"); anything else is `first_line`."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    return f"{problem} at line {mark.line + 1}" if problem and mark else first_line(exc)


def not_utf8(exc: UnicodeDecodeError) -> str:
    """A decoding error as the words every reader of a text file uses: the byte and the codec's reason."""
    return f"not UTF-8 text (byte {exc.object[exc.start]:#04x}: {exc.reason})"


def os_problem(exc: OSError) -> str:
    """An operating system's refusal as one line, with what to do: a full disk or quota is not a
    path to check but space to free (a run stopped by one goes on with --resume); anything else
    (missing, not allowed, a folder where a file was meant) is the path or its permissions."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in NO_SPACE:
        return f"{exc.strerror}{where}: free some space, or write elsewhere"
    return f"{exc.strerror or exc}{where}; check the path and its permissions"


class UserError(Exception):
    """A problem with the user's input or environment, with a message that names the fix."""

    exit_code = 2


class ScoresDiffer(UserError):
    """A `--check` (`evaluate`, `export`) that scored something other than the run's metrics.json.
    It ends with exit code 1, as `diff` and `cmp` end on a difference, so that a script can tell
    "the scores moved" from "the check could not be made" (2: a bad path, data that cannot be read)."""

    exit_code = 1


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` for a script's count (repeats, processes, a batch size, a seed): a whole
    number >= `minimum`, refused by argparse in one line. A plain `type=int` let `--repeats 0` through
    to a traceback (no median of no timings) after the models were built."""
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        return value
    return whole_number


def script_entry(main: Callable[[], object]) -> None:
    """How a file of scripts/ runs: a UserError from prune-cli's code (a run folder that is not one,
    a bad override) ends it in one line, "error: ..." with exit code 1 as the scripts' own refusals
    (`sys.exit(message)`) do, where a traceback would bury the line that names the fix."""
    try:
        main()
    except UserError as exc:
        sys.exit(f"error: {exc}")


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM; `detail` says where it was left and how to go on.

    It stays a KeyboardInterrupt (a BaseException) so that it passes through Hydra and a sweep
    stops, where an Exception would be recorded as one failed job and the sweep would go on.
    """

    def __init__(self, detail: str = "", signum: int = signal.SIGINT):
        super().__init__(detail)
        self.detail = detail
        self.signum = int(signum)

    def __reduce__(self):  # a sweep's worker process sends it back to the launcher pickled
        return type(self), (self.detail, self.signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's code for a process that the signal ended
