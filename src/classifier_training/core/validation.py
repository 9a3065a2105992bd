"""Validate a dataset before training: every problem, one line each.

One fast pass reads the annotations and each image's *header* (``PIL.Image.open``
decodes nothing). A cheap tail check (JPEG end-of-image marker, PNG ``IEND``
chunk) catches truncated files without decoding them; only a file that fails it
is decoded to confirm. ``decode=True`` (``classifier-check-data``) decodes every
image and can hash its content for the leakage report, and put each image's
near-duplicate signature into a
:class:`~classifier_training.core.signature_cache.SignatureCache` in the same
pass (only for images the cache does not hold yet).

Problems are collected, never raised one at a time: the report lists each as
``file:line: what is wrong`` (JSONL) or ``image path: what is wrong``
(class-per-folder), and :meth:`DataReport.raise_for_errors` raises a
:class:`~classifier_training.core.readers.DataError` carrying the whole report.

Bad-image policy (``data.on_bad_image``):

* ``error`` (default): an unreadable image stops the run at start-up; an image
  that still fails to decode later (e.g. changed on disk mid-run) raises a
  ``DataError`` naming the file.
* ``skip``: rows of unreadable images are left out at start-up, and an image
  that fails at load time is replaced by the next readable row; both counts are
  logged as warnings and saved in ``metrics.json``.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import UnidentifiedImageError

from classifier_training.core.image_io import (
    ImageTooLargeError,
    image_threads,
    load_image,
    open_image,
)
from classifier_training.core.near_duplicates import signature
from classifier_training.core.readers import (
    DataError,
    Problem,
    Sample,
    build_class_to_idx,
    detect_layout,
    display_name,
    find_splits,
    read_split,
    split_known,
    too_few_classes,
)
from classifier_training.core.signature_cache import SignatureCache, content_digest

BadImagePolicy = Literal["error", "skip"]  # data.on_bad_image

_TAIL_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """What one pass learned about one image file.

    Attributes:
        path: The image file.
        problem: What is wrong with it, or ``None`` when it is readable.
        size: ``(width, height)`` as declared in the header.
        pixel_hash: SHA-256 of the decoded RGB pixels (only when hashing).
        content_digest: SHA-256 of the file's bytes, the key of its
            near-duplicate signature (only when signatures are asked for).
    """

    path: Path
    problem: str | None = None
    size: tuple[int, int] | None = None
    pixel_hash: str | None = None
    content_digest: str | None = None


def _tail_looks_complete(path: Path, image_format: str | None) -> bool:
    """Cheap truncation test: does the file end like a complete JPEG/PNG?"""
    if image_format not in ("JPEG", "PNG"):
        return True
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - _TAIL_BYTES))
        tail = handle.read()
    marker = b"\xff\xd9" if image_format == "JPEG" else b"IEND"
    return marker in tail


_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF",
)


def _has_image_signature(path: Path) -> bool:
    """Whether the file starts like a common image format (then it is corrupt)."""
    with path.open("rb") as handle:
        head = handle.read(12)
    return head.startswith(_SIGNATURES)


def _decode_problem(error: BaseException) -> str:
    text = str(error)
    if "truncated" in text:
        return f"truncated image ({text})"
    return f"corrupt image, cannot decode ({type(error).__name__}: {text})"


def check_image(
    path: Path,
    decode: bool = False,
    hash_content: bool = False,
    signatures: SignatureCache | None = None,
) -> ImageCheck:
    """Check that ``path`` is a readable image (header, or full decode).

    Args:
        path: Image file.
        decode: Decode every pixel (otherwise only files whose tail looks
            truncated are decoded).
        hash_content: Also hash the decoded pixels (implies ``decode``), for the
            leakage report.
        signatures: Also make sure the image's near-duplicate signature is in
            this cache (implies ``decode``; computed only when absent).

    Returns:
        The check's result; ``problem`` says what is wrong, if anything.
    """
    try:
        byte_size = path.stat().st_size
    except FileNotFoundError:
        return ImageCheck(path, "image file not found")
    except OSError as error:
        return ImageCheck(path, f"cannot read image file ({error})")
    if not path.is_file():
        return ImageCheck(path, "image path is not a file")
    if byte_size == 0:
        return ImageCheck(path, "empty image file (0 bytes)")
    try:
        with open_image(path) as image:
            size, image_format = image.size, image.format
    except ImageTooLargeError as error:
        return ImageCheck(path, str(error).removeprefix(f"{path}: "))
    except UnidentifiedImageError:
        if _has_image_signature(path):
            return ImageCheck(path, "corrupt image (header cannot be parsed)")
        return ImageCheck(path, "not an image (unrecognised file format)")
    except (OSError, SyntaxError, ValueError) as error:
        return ImageCheck(path, f"corrupt image header ({error})")
    decode = (
        decode
        or hash_content
        or signatures is not None
        or not _tail_looks_complete(path, image_format)
    )
    if not decode:
        return ImageCheck(path, size=size)
    try:
        rgb = load_image(path)
    except Exception as error:  # any decoder failure means the file is bad
        return ImageCheck(path, _decode_problem(error), size=size)
    digest = None
    if signatures is not None:
        digest = content_digest(path)
        if signatures.get(digest) is None:
            signatures.put(digest, signature(np.asarray(rgb)))
    if not hash_content:
        return ImageCheck(path, size=size, content_digest=digest)
    pixels = hashlib.sha256(f"{rgb.size}".encode())
    pixels.update(np.ascontiguousarray(rgb).data)  # no copy of the pixels
    return ImageCheck(
        path, size=size, pixel_hash=pixels.hexdigest(), content_digest=digest
    )


def check_images(
    paths: Iterable[Path],
    decode: bool = False,
    hash_content: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    signatures: SignatureCache | None = None,
) -> dict[Path, ImageCheck]:
    """Check many images in a thread pool.

    Args:
        paths: Image files (duplicates are checked once).
        decode: Decode every image fully.
        hash_content: Hash the decoded pixels.
        signatures: Cache that receives each new near-duplicate signature.
        workers: Thread count (default:
            :func:`~classifier_training.core.image_io.image_threads`).
        progress: Called with 1 after each image.

    Returns:
        One result per distinct path.
    """
    unique = list(dict.fromkeys(paths))
    results: dict[Path, ImageCheck] = {}
    with ThreadPoolExecutor(max_workers=workers or image_threads()) as pool:
        checks = pool.map(
            lambda p: check_image(p, decode, hash_content, signatures), unique
        )
        for check in checks:
            results[check.path] = check
            if progress is not None:
                progress(1)
    return results


@dataclass
class DataReport:
    """Everything one validation pass found.

    Attributes:
        data_root: The dataset root.
        split_dirs: Split name to folder (``None`` when absent).
        layouts: Split name to ``jsonl`` or ``folder``.
        rows: Rows whose annotation is valid, per split (bad images included).
        problems: Every problem found, in discovery order.
        images: Result of the image pass per distinct image path.
    """

    data_root: Path
    split_dirs: dict[str, Path | None] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[Sample]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    images: dict[Path, ImageCheck] = field(default_factory=dict)

    @property
    def bad_images(self) -> dict[Path, str]:
        """Unreadable image path to what is wrong with it."""
        return {p: c.problem for p, c in self.images.items() if c.problem is not None}

    @property
    def errors(self) -> list[Problem]:
        """Problems that stop a run."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that are only reported."""
        return [p for p in self.problems if p.severity == "warning"]

    def usable_rows(self) -> dict[str, list[Sample]]:
        """Rows per split without those whose image is unreadable."""
        bad = self.bad_images
        return {
            split: [s for s in samples if s.image not in bad]
            for split, samples in self.rows.items()
        }

    def skipped_rows(self) -> dict[str, int]:
        """Rows per split whose image is unreadable."""
        bad = self.bad_images
        return {
            split: sum(s.image in bad for s in samples)
            for split, samples in self.rows.items()
        }

    def format(self, problems: Sequence[Problem] | None = None) -> str:
        """The one-line-per-problem report."""
        chosen = self.problems if problems is None else problems
        return "\n".join(str(p) for p in chosen)

    def raise_for_errors(self) -> None:
        """Raise a ``DataError`` whose message is the full report of errors.

        Raises:
            DataError: If any problem has severity ``error``.
        """
        errors = self.errors
        if not errors:
            return
        if len(errors) == 1:
            raise DataError(str(errors[0]))
        raise DataError(
            f"{len(errors)} problems in {self.data_root}:\n{self.format(errors)}"
        )


def _rows_by_image(rows: Mapping[str, list[Sample]]) -> dict[Path, list[Sample]]:
    by_image: dict[Path, list[Sample]] = {}
    for samples in rows.values():
        for sample in samples:
            by_image.setdefault(sample.image, []).append(sample)
    return by_image


def _duplicate_problems(split: str, samples: Sequence[Sample]) -> list[Problem]:
    """Warnings for rows repeating an earlier row's image (same or other label)."""
    problems: list[Problem] = []
    first: dict[tuple[Path, str], Sample] = {}
    labels: dict[Path, Sample] = {}
    for sample in samples:
        key = (sample.image, sample.label)
        if key in first:
            problems.append(
                Problem(
                    sample.where,
                    f"duplicate row: same image and label as {first[key].where}",
                    "warning",
                )
            )
            continue
        first[key] = sample
        earlier = labels.setdefault(sample.image, sample)
        if earlier.label != sample.label:
            problems.append(
                Problem(
                    sample.where,
                    f"image {sample.image.name} is labelled "
                    f"{display_name(sample.label)!r} here but "
                    f"{display_name(earlier.label)!r} at {earlier.where}",
                    "warning",
                )
            )
    return problems


def _structure_problems(report: DataReport) -> None:
    """Missing or empty splits, too few classes."""
    root, dirs = report.data_root, report.split_dirs
    if dirs.get("train") is None:
        report.problems.append(Problem(str(root), "no train/ split folder"))
    elif not report.rows.get("train"):
        report.problems.append(
            Problem(str(dirs["train"]), "train split has no samples")
        )
    else:
        problem = too_few_classes(s.label for s in report.rows["train"])
        if problem is not None:
            report.problems.append(Problem(str(dirs["train"]), problem))
    if dirs.get("val") is None:
        report.problems.append(Problem(str(root), "no valid/ (or val/) split folder"))
    elif not report.rows.get("val"):
        report.problems.append(
            Problem(str(dirs["val"]), "validation split has no samples")
        )


def validate_dataset(
    data_root: Path,
    on_bad_image: BadImagePolicy = "error",
    decode: bool = False,
    hash_content: bool = False,
    unknown_labels: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_images_found: Callable[[int], None] | None = None,
    signatures: SignatureCache | None = None,
) -> DataReport:
    """Check annotations, splits and images; collect every problem.

    Args:
        data_root: Dataset root with ``train/``, ``valid/`` (or ``val/``), ``test/``.
        on_bad_image: ``skip`` turns unreadable images into warnings (their rows
            are then left out by :meth:`DataReport.usable_rows`).
        decode: Fully decode every image (finds every truncated file).
        hash_content: Hash the decoded pixels (for the leakage report).
        unknown_labels: Warn about valid/test labels absent from train.
        workers: Threads for the image pass.
        progress: Called with 1 after each image is checked.
        on_images_found: Called once with the number of distinct images.
        signatures: Cache that receives the near-duplicate signature of each
            image it lacks, computed in the decode pass.

    Returns:
        The report (never raises for data problems).
    """
    report = DataReport(data_root=data_root)
    try:
        report.split_dirs = find_splits(data_root)
    except DataError as error:
        report.problems.append(Problem(str(data_root), _strip(error, data_root)))
        return report
    for split, split_dir in report.split_dirs.items():
        if split_dir is None:
            continue
        report.layouts[split] = detect_layout(split_dir)
        report.rows[split] = read_split(split_dir, report.problems)
    _structure_problems(report)
    for split, samples in report.rows.items():
        report.problems.extend(_duplicate_problems(split, samples))
    if unknown_labels and report.rows.get("train"):
        classes = build_class_to_idx(s.label for s in report.rows["train"])
        for split in ("val", "test"):
            _, excluded = split_known(report.rows.get(split, []), classes)
            for label, count in excluded.labels.items():
                report.problems.append(
                    Problem(
                        str(report.split_dirs[split]),
                        f"label {display_name(label)!r} ({count} row(s)) is not a "
                        "train class; its rows are excluded from evaluation",
                        "warning",
                    )
                )
    by_image = _rows_by_image(report.rows)
    if on_images_found is not None:
        on_images_found(len(by_image))
    report.images = check_images(
        by_image, decode, hash_content, workers, progress, signatures
    )
    severity: Literal["error", "warning"] = (
        "warning" if on_bad_image == "skip" else "error"
    )
    for path, problem in report.bad_images.items():
        users = by_image[path]
        more = f" (and {len(users) - 1} more row(s))" if len(users) > 1 else ""
        where = users[0].where
        text = problem if where == str(path) else f"{path}: {problem}"
        if severity == "warning":
            text += "; skipped"
        report.problems.append(Problem(where, text + more, severity))
    return report


def _strip(error: DataError, where: Path) -> str:
    return str(error).removeprefix(f"{where}: ")


def describe_counts(rows: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    """Rows, distinct images and per-class rows for each split (for reports)."""
    return {
        split: {
            "rows": len(samples),
            "images": len({s.image for s in samples}),
            # Class order as in class_to_idx: sorted labels, so "" comes first.
            "classes": {
                display_name(label): count
                for label, count in sorted(Counter(s.label for s in samples).items())
            },
        }
        for split, samples in rows.items()
    }


def leakage_groups(
    rows: Mapping[str, Sequence[Sample]], images: Mapping[Path, ImageCheck]
) -> list[dict[str, Any]]:
    """Groups of distinct files with identical content (decoded pixels or bytes).

    Args:
        rows: Rows per split.
        images: Hashed image checks.

    Returns:
        One entry per group of two or more distinct files with identical pixels:
        the hash, whether it spans several splits, and each file with its split.
    """
    split_of: dict[Path, set[str]] = {}
    for split, samples in rows.items():
        for sample in samples:
            split_of.setdefault(sample.image, set()).add(split)
    by_hash: dict[str, list[Path]] = {}
    for path, check in images.items():
        key = check.pixel_hash
        if key is not None and path in split_of:
            by_hash.setdefault(key, []).append(path)
    groups: list[dict[str, Any]] = []
    for key, paths in by_hash.items():
        if len(paths) < 2:
            continue
        splits = sorted({s for p in paths for s in split_of[p]})
        groups.append(
            {
                "hash": key,
                "cross_split": len(splits) > 1,
                "splits": splits,
                "files": [
                    {"split": sorted(split_of[p])[0], "path": str(p)}
                    for p in sorted(paths)
                ],
            }
        )
    groups.sort(key=lambda g: (not g["cross_split"], g["files"][0]["path"]))
    return groups
