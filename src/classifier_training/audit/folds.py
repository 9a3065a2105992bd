"""Which train rows each fold model of the label audit holds out.

Every train row is held out by exactly one of ``K`` folds and predicted by the
model trained on the other ``K - 1``: its prediction never comes from a model
that saw it. Folds are stratified by label (scikit-learn's ``StratifiedKFold``)
and, with a group key (the frames of one track), by group too
(``StratifiedGroupKFold``): all rows of a group share a fold, so the frames of a
track never inform the audit of their own track.

A class with fewer rows (or groups) than folds lands in fewer folds; a held-out
row whose class has no row left in its fold's training rows cannot be judged
(the model never learnt the class) and is not audited. :func:`class_coverage`
says which classes that concerns, before any training.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from classifier_training.core.errors import UsageError
from classifier_training.core.readers import display_name

#: The fewest folds: one to train on, one to hold out.
MIN_FOLDS = 2


def check_fold_count(folds: int) -> None:
    """Refuse fewer than :data:`MIN_FOLDS` folds.

    Raises:
        UsageError: Naming the value.
    """
    if folds < MIN_FOLDS:
        raise UsageError(f"--folds must be at least {MIN_FOLDS}, got {folds}")


def assign_folds(
    labels: Sequence[str],
    groups: Sequence[str] | None,
    folds: int,
    seed: int = 0,
) -> npt.NDArray[np.int64]:
    """The fold (``0..folds-1``) that holds out each row.

    Args:
        labels: Each row's label.
        groups: Each row's group id (rows of one group share a fold); ``None``:
            every row stands alone.
        folds: Number of folds (at least :data:`MIN_FOLDS`).
        seed: Seed of the shuffle (the same seed, the same folds).

    Returns:
        One fold index per row.

    Raises:
        UsageError: If ``folds`` is below 2, or there are fewer rows (groups)
            than folds, or every class has fewer rows than folds.
    """
    check_fold_count(folds)
    units = len(set(groups)) if groups is not None else len(labels)
    what = "groups" if groups is not None else "rows"
    if units < folds:
        raise UsageError(
            f"--folds {folds}: the train split has only {units} {what}; use fewer folds"
        )
    largest = max(Counter(labels).values())
    if largest < folds:
        raise UsageError(
            f"--folds {folds}: no class has that many train rows (largest: "
            f"{largest}); use --folds {max(MIN_FOLDS, largest)} at most"
        )
    index = {name: i for i, name in enumerate(sorted(set(labels)))}
    y = np.array([index[label] for label in labels])
    x = np.zeros((len(labels), 1))
    fold_of = np.full(len(labels), -1, dtype=np.int64)
    with warnings.catch_warnings():
        # Classes smaller than the fold count are reported by class_coverage.
        warnings.filterwarnings("ignore", message="The least populated class")
        if groups is None:
            splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)
        else:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            splits = splitter.split(x, y, np.asarray(groups))
        for fold, (_, held_out) in enumerate(splits):
            fold_of[held_out] = fold
    return fold_of


@dataclass(frozen=True, slots=True)
class ClassCoverage:
    """How the folds cover one class that has fewer rows (or groups) than folds.

    Attributes:
        label: The class.
        rows: Its train rows.
        folds: Folds holding out some of its rows.
        unaudited: Its rows held out by a fold that kept none of the class to
            train on (not audited).
    """

    label: str
    rows: int
    folds: int
    unaudited: int

    def message(self, total_folds: int) -> str:
        """One line for the terminal and ``summary.json``."""
        head = (
            f"class {display_name(self.label)!r}: {self.rows} train row(s), "
            f"in {self.folds} of {total_folds} folds"
        )
        if self.unaudited == self.rows:
            return f"{head}: not audited (no other row of the class to learn it from)"
        if self.unaudited:
            return (
                f"{head}: {self.unaudited} row(s) not audited (their fold keeps "
                "no row of the class)"
            )
        return f"{head}: audited with fewer folds"


def auditable(
    labels: Sequence[str], fold_of: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether each row's fold kept a row of its class to train on."""
    rows_of = Counter(labels)
    held = Counter(zip(labels, fold_of.tolist(), strict=True))
    return np.array(
        [
            held[(label, int(f))] < rows_of[label]
            for label, f in zip(labels, fold_of, strict=True)
        ]
    )


def class_coverage(
    labels: Sequence[str], fold_of: npt.NDArray[np.int64], folds: int
) -> list[ClassCoverage]:
    """The classes the folds cover only partly (in fewer folds than ``folds``).

    Args:
        labels: Each row's label.
        fold_of: Each row's fold (:func:`assign_folds`).
        folds: Number of folds.

    Returns:
        One entry per such class, by label.
    """
    ok = auditable(labels, fold_of)
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        rows_of[label].append(i)
    notes = []
    for label in sorted(rows_of):
        mine = rows_of[label]
        in_folds = len({int(fold_of[i]) for i in mine})
        if in_folds < folds:
            unaudited = sum(not ok[i] for i in mine)
            notes.append(ClassCoverage(label, len(mine), in_folds, unaudited))
    return notes
