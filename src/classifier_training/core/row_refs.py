"""Row references: one dataset row named relative to the dataset root.

``train/annotations.jsonl:17`` names line 17 of that annotation file;
``train/7/crop_0042.png`` names an image of the class-folder layout. Unlike
:attr:`~classifier_training.core.readers.Sample.where`, which carries the path
the data root was given as, a reference stays the same whichever path reaches the
dataset, so a list written by one command is read by another: the row lists of
``classifier-audit-labels`` (each fold's held-out rows, ``flagged_train_rows.txt``)
are what ``data.exclude_rows`` reads.

A row list is a text file with one reference per line; blank lines and lines
starting with ``#`` are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from classifier_training.core.io import atomic_write_text
from classifier_training.core.readers import DataError, Sample


class RowListError(DataError):
    """A row list is unreadable or names a row the dataset does not have."""


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def row_ref(sample: Sample, data_root: Path) -> str:
    """The reference of ``sample``: its ``file:line`` (JSONL) or image (folders).

    Args:
        sample: A row read from ``data_root``.
        data_root: The dataset root the row was read from.

    Returns:
        The path relative to ``data_root`` (``/``-separated), with ``:line`` for
        a JSONL row.
    """
    if sample.line is not None:
        return f"{_relative(sample.source, data_root)}:{sample.line}"
    return _relative(sample.image, data_root)


def read_row_list(path: Path) -> dict[str, int]:
    """The references of a row list, each with its line number in the file.

    Raises:
        RowListError: If the file is missing or unreadable.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = "not found" if isinstance(error, FileNotFoundError) else str(error)
        raise RowListError(f"{path}: cannot read the row list ({reason})") from None
    refs: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            refs.setdefault(entry, number)
    return refs


def write_row_list(path: Path, refs: Iterable[str], header: str = "") -> Path:
    """Write a row list atomically (``header``: ``#`` comment lines on top)."""
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    return atomic_write_text(path, comments + "".join(f"{r}\n" for r in refs))


def check_row_list(
    refs: Mapping[str, int], samples: Sequence[Sample], data_root: Path, path: Path
) -> None:
    """Refuse a row list that names rows ``samples`` does not hold.

    Args:
        refs: The list's references and line numbers (:func:`read_row_list`).
        samples: The rows the list must be drawn from.
        data_root: Their dataset root.
        path: The list file, for the message.

    Raises:
        RowListError: Naming the list's ``file:line`` of the first unknown row
            and how many there are.
    """
    known = {row_ref(s, data_root) for s in samples}
    unknown = [(line, ref) for ref, line in refs.items() if ref not in known]
    if unknown:
        line, ref = min(unknown)
        more = f" ({len(unknown)} unknown rows in all)" if len(unknown) > 1 else ""
        raise RowListError(
            f"{path}:{line}: {ref!r} is not a usable train row of {data_root}{more}"
        )


def without_rows(
    samples: Sequence[Sample], refs: Mapping[str, int] | set[str], data_root: Path
) -> list[Sample]:
    """``samples`` less the rows ``refs`` names, in order."""
    return [s for s in samples if row_ref(s, data_root) not in refs]
