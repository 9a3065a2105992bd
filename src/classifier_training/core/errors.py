"""The project's own error types.

Command-line entry points turn a :class:`ClassifierError` into one line on stderr
and exit with :data:`USER_ERROR_EXIT_CODE`; any other exception is a bug and keeps
its traceback.
"""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2


class ClassifierError(Exception):
    """Base class of errors caused by input (config, data, model files), not bugs.

    The message is complete on its own: it names the file, key or value at fault
    and, where there is one, the way to proceed.
    """
