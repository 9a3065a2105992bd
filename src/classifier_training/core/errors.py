"""The project's own error types.

Command-line entry points turn a :class:`ClassifierError` into one line on stderr
and exit with :data:`USER_ERROR_EXIT_CODE`; any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERROR_EXIT_CODE = 2


class ClassifierError(Exception):
    """Base class of errors caused by input (config, data, model files), not bugs.

    The message is complete on its own: it names the file, key or value at fault
    and, where there is one, the way to proceed.
    """


def run_command(main: Callable[[], int]) -> int:
    """Run a command's body; a :class:`ClassifierError` becomes one line.

    Every console script wraps its body with this, so the same bad input (a file
    that is not a checkpoint, a foreign ``labels_mapping.json``) gives the same
    ``error: ...`` line and exit status everywhere. Any other exception is a bug:
    it propagates with its traceback.

    Args:
        main: The command body; returns the exit status.

    Returns:
        ``main``'s status, or :data:`USER_ERROR_EXIT_CODE` after a
        :class:`ClassifierError`.
    """
    try:
        return main()
    except ClassifierError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE


class UsageError(ClassifierError):
    """A command-line argument has an impossible value."""


def root_cause_line(error: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of the innermost cause of ``error``.

    torch.compile wraps the real failure (a missing C++ compiler, an unsupported
    operation) in several layers; a one-line message should name that one.

    Args:
        error: The exception caught.
        limit: Most characters kept of the message's first line.

    Returns:
        The root cause's type name and the first line of its message.
    """
    root: BaseException = getattr(error, "inner_exception", None) or error
    while root.__cause__ is not None:
        root = root.__cause__
    lines = str(root).strip().splitlines() or [""]
    return f"{type(root).__name__}: {lines[0][:limit]}"
