"""The one exception type that means "the user asked for something we cannot do".

Everything raised as `UserError` is shown as a single line with a non-zero exit and no
traceback; anything else is a bug and keeps its traceback (or shows it with `--debug`).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment, with a message that names the fix."""

    exit_code = 2
