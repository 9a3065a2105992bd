"""Atomic file writes: a run killed at any moment never leaves a truncated file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same folder, so the final ``os.replace`` is an
    atomic rename. On any exception the temporary file is removed and ``path`` is
    left untouched.

    Args:
        path: The final destination.

    Yields:
        A temporary path to write to (same suffix as ``path``, so libraries that
        pick a format from the extension keep working).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp's 0600 is not wanted here
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8).

    Args:
        path: The destination file.
        text: The content.

    Returns:
        The destination as a ``Path``.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as pretty, key-order-preserving JSON to ``path`` atomically.

    Args:
        path: The destination file.
        data: A JSON-serialisable object.

    Returns:
        The destination as a ``Path``.
    """
    return atomic_write_text(
        path, json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    )
