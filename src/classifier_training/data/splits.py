"""The rows a run trains and evaluates on: validated splits and their classes.

:func:`read_splits` runs the start-up validation and keeps the usable rows;
:func:`assign_classes` takes the classes from the train split alone (sorted, so
the empty label ``""`` is index 0 when present) and leaves out the valid/test
rows whose label train lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from classifier_training.core.groups import check_split_groups
from classifier_training.core.readers import (
    DataError,
    ExcludedRows,
    Sample,
    build_class_to_idx,
    split_known,
    too_few_classes,
)
from classifier_training.core.row_refs import (
    check_row_list,
    read_row_list,
    without_rows,
)
from classifier_training.core.validation import BadImagePolicy, validate_dataset

SplitRows = dict[str, list[Sample]]


@dataclass(frozen=True)
class FoundSplits:
    """What the start-up validation found.

    Attributes:
        split_dirs: Split name to folder (``None`` when absent).
        layouts: Split name to ``jsonl`` or ``folder``.
        rows: Rows per split whose image passed the header check.
        skipped: Rows per split left out because their image is unreadable.
    """

    split_dirs: dict[str, Path | None]
    layouts: dict[str, str]
    rows: SplitRows
    skipped: dict[str, int]


@dataclass(frozen=True)
class ClassedSplits:
    """Rows per split, with the classes they are trained on.

    Attributes:
        class_names: The train split's labels, sorted: index ``i`` is class ``i``.
        rows: Every train row; the valid/test rows whose label is a train class.
        excluded: Per valid/test split, the rows left out and their labels.
    """

    class_names: tuple[str, ...]
    rows: SplitRows
    excluded: dict[str, ExcludedRows]

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to index."""
        return {name: index for index, name in enumerate(self.class_names)}


def read_splits(data_root: Path, on_bad_image: BadImagePolicy) -> FoundSplits:
    """Validate the dataset (every problem at once) and keep its usable rows.

    Args:
        data_root: The dataset root.
        on_bad_image: ``skip`` leaves out rows of unreadable images (counted in
            :attr:`FoundSplits.skipped`); ``error`` stops.

    Returns:
        The splits found.

    Raises:
        DataError: With one line per problem found.
    """
    report = validate_dataset(data_root, on_bad_image=on_bad_image)
    report.raise_for_errors()
    for problem in report.warnings:
        logger.warning(str(problem))
    return FoundSplits(
        split_dirs=report.split_dirs,
        layouts=dict(report.layouts),
        rows=report.usable_rows(),
        skipped=report.skipped_rows(),
    )


def assign_classes(rows: SplitRows, train_dir: Path | None) -> ClassedSplits:
    """Classes from the train rows; valid/test rows of other labels left out.

    The start-up validation checks the class count too, but rows may have been
    left out since (images that fail the full decode of the cache build).

    Args:
        rows: Rows per split (``train`` required).
        train_dir: The train folder, named in the error.

    Returns:
        The classes and the rows kept.

    Raises:
        DataError: If the train rows hold fewer than two classes.
    """
    class_to_idx = build_class_to_idx(sample.label for sample in rows["train"])
    problem = too_few_classes(class_to_idx)
    if problem is not None:
        raise DataError(f"{train_dir}: {problem}")
    kept: SplitRows = {}
    excluded: dict[str, ExcludedRows] = {}
    for split, samples in rows.items():
        if split == "train":
            kept[split] = samples
            continue
        kept[split], excluded[split] = split_known(samples, class_to_idx)
        if excluded[split].count:
            logger.warning(excluded[split].summary(split))
    return ClassedSplits(tuple(class_to_idx), kept, excluded)


def report_group_coverage(found: FoundSplits, key: str) -> None:
    """Refuse a group key the data cannot carry; warn about rows without it.

    Raises:
        GroupKeyError: For the class-folder layout, or a key no row has.
    """
    coverage = check_split_groups(found.rows, found.layouts, found.split_dirs, key)
    for split, counts in coverage.items():
        if counts.missing:
            logger.warning(
                f"data.group_key={key}: {counts.missing} of {counts.rows} {split} "
                "row(s) have no such metadata; each is a group of its own"
            )


def leave_out_listed(
    rows: SplitRows, found: FoundSplits, row_list: Path, data_root: Path
) -> SplitRows:
    """``rows`` without the train rows ``row_list`` names (``data.exclude_rows``).

    Args:
        rows: The rows to train on, per split (after the caches were built).
        found: What the start-up validation found (the list is checked against
            its train rows).
        row_list: The row list file.
        data_root: The dataset root the references are relative to.

    Returns:
        ``rows`` with the listed train rows left out.

    Raises:
        RowListError: If the file is unreadable or names a row that is not a
            usable train row.
    """
    refs = read_row_list(row_list)
    check_row_list(refs, found.rows["train"], data_root, row_list)
    kept = without_rows(rows["train"], refs, data_root)
    logger.info(
        f"data.exclude_rows: left out {len(rows['train']) - len(kept)} train row(s) "
        f"listed in {row_list}"
    )
    return {**rows, "train": kept}
