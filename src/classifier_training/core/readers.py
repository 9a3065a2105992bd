"""Readers that turn a split folder into a list of samples.

Two layouts are supported and detected per split:

* **JSONL**: one or more ``annotations.jsonl`` files anywhere below the split
  folder; each line is ``{"image": <path relative to that file's folder>,
  "prefix": <ignored>, "suffix": <label>, "metadata": {...}}``. One line is one
  sample, so an image may appear in several rows.
* **Class per folder**: ``<split>/<class_name>/<image>``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from classifier_training.core.errors import ClassifierError

ANNOTATION_FILE = "annotations.jsonl"
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
#: The splits, by the one name code, metrics and reports use for each. On disk
#: the validation folder may be called ``valid/`` or ``val/``.
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("valid", "val"),
    "test": ("test",),
}
EMPTY_LABEL_NAME = "<empty>"
#: A classifier needs two classes at least (the one place this rule is stated).
MIN_CLASSES = 2

Layout = Literal["jsonl", "folder"]


class DataError(ClassifierError, ValueError):
    """Bad input data: the message names the file (and line) and what is wrong."""


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in the data, for a one-line-per-problem report.

    Attributes:
        where: ``file:line`` for JSONL rows, else the file or folder concerned.
        message: What is wrong.
        severity: ``error`` stops a run; ``warning`` is only reported.
    """

    where: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        """``where: message`` (warnings are marked as such)."""
        mark = "warning: " if self.severity == "warning" else ""
        return f"{self.where}: {mark}{self.message}"


def _problem_from_error(error: DataError, where: str) -> Problem:
    """Turn a ``DataError`` whose message starts with ``where: `` into a Problem."""
    text = str(error)
    prefix = f"{where}: "
    return Problem(where, text.removeprefix(prefix))


@dataclass(frozen=True, slots=True)
class Sample:
    """One annotated sample.

    Attributes:
        image: Path of the image file.
        label: Class name (may be ``""``, the empty label).
        source: The annotation file (JSONL) or class folder it came from.
        line: 1-based line number in ``source`` for JSONL rows, else ``None``.
        metadata: Optional per-row metadata from the JSONL row.
    """

    image: Path
    label: str
    source: Path
    line: int | None = None
    metadata: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """``file:line`` (or the image path) for error messages."""
        return (
            f"{self.source}:{self.line}" if self.line is not None else str(self.image)
        )


def too_few_classes(class_names: Iterable[str]) -> str | None:
    """Why ``class_names`` cannot train a classifier, or ``None`` when they can."""
    names = sorted(set(class_names))
    if len(names) >= MIN_CLASSES:
        return None
    return (
        f"need at least {MIN_CLASSES} classes, found "
        f"{[display_name(name) for name in names]}"
    )


def display_name(label: str) -> str:
    """Human-readable class name (the empty label is shown as ``<empty>``)."""
    return label if label else EMPTY_LABEL_NAME


def canonical_split(name: str) -> str:
    """The split's one name (``valid`` -> ``val``), for names users type.

    Raises:
        ValueError: For a name that is no split.
    """
    for split, aliases in SPLIT_ALIASES.items():
        if name == split or name in aliases:
            return split
    raise ValueError(f"unknown split {name!r}; expected one of train, val, test")


def find_splits(data_root: Path) -> dict[str, Path | None]:
    """Locate the ``train``, ``valid`` (or ``val``) and ``test`` folders.

    Args:
        data_root: Dataset root folder.

    Returns:
        Mapping of canonical split name to folder (``None`` when absent).

    Raises:
        DataError: If ``data_root`` is missing or both ``valid`` and ``val`` exist.
    """
    if not data_root.is_dir():
        raise DataError(f"{data_root}: data root folder does not exist")
    splits: dict[str, Path | None] = {}
    for split, aliases in SPLIT_ALIASES.items():
        found = [data_root / name for name in aliases if (data_root / name).is_dir()]
        if len(found) > 1:
            raise DataError(
                f"{data_root}: both {found[0].name}/ and {found[1].name}/ exist; "
                "keep one validation split"
            )
        splits[split] = found[0] if found else None
    return splits


def detect_layout(split_dir: Path) -> Layout:
    """``jsonl`` if the split holds an ``annotations.jsonl``, else ``folder``."""
    return "jsonl" if any(split_dir.rglob(ANNOTATION_FILE)) else "folder"


def _resolve_inside(base: Path, split_dir: Path, relative: str, where: str) -> Path:
    """Resolve ``relative`` against ``base`` and refuse paths that leave the split."""
    candidate = Path(relative)
    if candidate.is_absolute():
        raise DataError(
            f"{where}: image path {relative!r} is absolute; use a path "
            "relative to the annotation file"
        )
    # Lexical, not resolved: a symbolic link inside the split folder is inside it
    # (classifier-split --link symlink), while "../" still leaves it.
    path = Path(os.path.abspath(base / candidate))
    if not path.is_relative_to(os.path.abspath(split_dir)):
        raise DataError(
            f"{where}: image path {relative!r} escapes the split folder {split_dir}"
        )
    return path


def parse_jsonl_line(text: str, jsonl: Path, line_no: int, split_dir: Path) -> Sample:
    """Parse one annotation line into a ``Sample``.

    Args:
        text: The raw line.
        jsonl: The annotation file (for messages and relative paths).
        line_no: 1-based line number.
        split_dir: The split folder image paths must stay inside.

    Returns:
        The parsed sample.

    Raises:
        DataError: Naming ``file:line`` and what is wrong.
    """
    where = f"{jsonl}:{line_no}"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("image", "suffix"):
        if key not in row:
            raise DataError(f"{where}: missing required key {key!r}")
    image, label = row["image"], row["suffix"]
    if not isinstance(image, str) or not image:
        raise DataError(f"{where}: 'image' must be a non-empty string, got {image!r}")
    if not isinstance(label, str):
        raise DataError(
            f"{where}: label 'suffix' must be a string, got {type(label).__name__} "
            f"{label!r}"
        )
    metadata = row.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise DataError(f"{where}: 'metadata' must be an object, got {metadata!r}")
    path = _resolve_inside(jsonl.parent, split_dir, image, where)
    return Sample(
        image=path, label=label, source=jsonl, line=line_no, metadata=metadata
    )


def iter_jsonl_lines(jsonl: Path) -> Iterable[tuple[int, str]]:
    """Yield ``(line_number, text)`` for the non-blank lines of ``jsonl``."""
    with jsonl.open(encoding="utf-8") as handle:
        for line_no, text in enumerate(handle, start=1):
            if text.strip():
                yield line_no, text


def read_jsonl_split(
    split_dir: Path, problems: list[Problem] | None = None
) -> list[Sample]:
    """Read every ``annotations.jsonl`` below ``split_dir`` (sorted, recursive).

    Args:
        split_dir: The split folder.
        problems: When given, malformed lines are appended here (one ``Problem``
            each) and skipped instead of raising, so every problem is reported.

    Returns:
        Samples in file order, files in sorted path order.

    Raises:
        DataError: On the first malformed line (file and line named), unless
            ``problems`` collects them.
    """
    samples: list[Sample] = []
    for jsonl in sorted(split_dir.rglob(ANNOTATION_FILE)):
        try:
            lines = list(iter_jsonl_lines(jsonl))
        except (OSError, UnicodeDecodeError) as error:
            failure = DataError(f"{jsonl}: cannot read annotation file ({error})")
            if problems is None:
                raise failure from None
            problems.append(_problem_from_error(failure, str(jsonl)))
            continue
        for line_no, text in lines:
            try:
                samples.append(parse_jsonl_line(text, jsonl, line_no, split_dir))
            except DataError as error:
                if problems is None:
                    raise
                problems.append(_problem_from_error(error, f"{jsonl}:{line_no}"))
    return samples


def read_folder_split(split_dir: Path) -> list[Sample]:
    """Read a class-per-folder split: ``<split>/<class>/<image>`` (recursive).

    Args:
        split_dir: The split folder.

    Returns:
        Samples sorted by class name, then path.
    """
    samples: list[Sample] = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name.startswith("."):
            continue
        for image in sorted(class_dir.rglob("*")):
            if image.suffix.lower() in IMAGE_EXTENSIONS and image.is_file():
                samples.append(
                    Sample(image=image, label=class_dir.name, source=class_dir)
                )
    return samples


def read_split(split_dir: Path, problems: list[Problem] | None = None) -> list[Sample]:
    """Read a split in whichever layout it uses.

    Args:
        split_dir: The split folder.
        problems: When given, malformed JSONL lines are collected here and skipped
            instead of raising on the first one.

    Returns:
        The split's samples.
    """
    if detect_layout(split_dir) == "jsonl":
        return read_jsonl_split(split_dir, problems)
    return read_folder_split(split_dir)


def build_class_to_idx(labels: Iterable[str]) -> dict[str, int]:
    """Map each distinct label to an index: sorted, so ``""`` (if present) is 0.

    Args:
        labels: Labels of the train split.

    Returns:
        The class-to-index mapping.
    """
    return {label: idx for idx, label in enumerate(sorted(set(labels)))}


@dataclass(frozen=True)
class ExcludedRows:
    """Rows of a valid/test split left out because their label is not a train class.

    Attributes:
        count: Number of rows excluded.
        labels: Excluded label names with their row counts (most common first).
    """

    count: int
    labels: dict[str, int]

    def summary(self, split: str, max_examples: int = 5) -> str:
        """One-line human summary naming a few example labels."""
        examples = ", ".join(repr(lbl) for lbl in list(self.labels)[:max_examples])
        return (
            f"{split}: excluded {self.count} row(s) whose label is not in train "
            f"({len(self.labels)} label(s), e.g. {examples})"
        )


def split_known(
    samples: list[Sample], class_to_idx: Mapping[str, int]
) -> tuple[list[Sample], ExcludedRows]:
    """Keep samples whose label is a train class; count the others.

    Args:
        samples: Samples of a valid or test split.
        class_to_idx: The train split's classes.

    Returns:
        The kept samples and a record of what was excluded.
    """
    kept = [s for s in samples if s.label in class_to_idx]
    unknown = Counter(s.label for s in samples if s.label not in class_to_idx)
    return kept, ExcludedRows(
        count=sum(unknown.values()), labels=dict(unknown.most_common())
    )


def iter_image_files(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (recursive), by extension, sorted.

    Args:
        folder: The folder to search.

    Returns:
        Files whose suffix is in :data:`IMAGE_EXTENSIONS` (any case), sorted.
    """
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )
