"""Confident learning: find rows whose given label is likely wrong.

The method of Northcutt, Jiang and Chuang ("Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021), on out-of-sample predicted
probabilities (each row predicted by a model that did not train on it):

1. For each class ``j``, a threshold ``t_j``: the mean probability the model gives
   class ``j`` on the rows labelled ``j`` (its expected self-confidence).
2. A row labelled ``y`` is *confidently* another class when its probability of
   ``y`` is below ``t_y`` while some other class ``k`` clears its own ``t_k``; the
   suggested label is the most probable such ``k`` (the off-diagonal of the
   confident joint).
3. Flagged rows are ranked by the normalised margin ``p(k) - p(y)``: how
   confidently the model disagrees.

Written here (numpy, a few lines) because the reference implementation, cleanlab,
is AGPL-licensed and cannot be a dependency of this project.

Each flagged row gets a :data:`Reason` for the reviewer: :func:`label_reason`
tells a wrong number from a crop read as unreadable (or readable) by whether the
empty label ``""`` is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

#: A class with no row of its own gets this threshold (it can never be clear).
_UNSEEN_THRESHOLD = np.inf

Reason = Literal[
    "likely_wrong_label", "likely_unreadable", "likely_readable", "track_disagrees"
]
#: What each reason means, for the review page and the terminal.
REASONS: dict[Reason, str] = {
    "likely_wrong_label": "the model confidently reads another label",
    "likely_unreadable": 'labelled with a number the model reads as "" (no '
    "readable number)",
    "likely_readable": 'labelled "" (no readable number) but the model reads a number',
    "track_disagrees": "other frames of the same track carry another label",
}


def label_reason(given: str, suggested: str) -> Reason:
    """Why confident learning flags a row labelled ``given`` and read as ``suggested``.

    Args:
        given: The given label (``""``: no readable number).
        suggested: The label the model confidently reads instead.

    Returns:
        ``likely_unreadable`` when the model reads ``""`` for a label,
        ``likely_readable`` when it reads a label for ``""``, else
        ``likely_wrong_label``.
    """
    if given and not suggested:
        return "likely_unreadable"
    if suggested and not given:
        return "likely_readable"
    return "likely_wrong_label"


@dataclass(frozen=True, slots=True)
class LabelIssue:
    """One row whose given label the model confidently disagrees with.

    Attributes:
        row: Index of the row in the audited arrays.
        given: Class index of the given label.
        suggested: Class index the model confidently reads instead.
        p_given: Probability of the given label.
        p_suggested: Probability of the suggested label.
    """

    row: int
    given: int
    suggested: int
    p_given: float
    p_suggested: float

    @property
    def score(self) -> float:
        """How confidently the model disagrees (``p_suggested - p_given``, 0-1)."""
        return self.p_suggested - self.p_given


def class_thresholds(
    probs: npt.ArrayLike, labels: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Per class, the mean probability of that class over the rows labelled with it.

    Args:
        probs: ``N x K`` out-of-sample probabilities.
        labels: ``N`` given class indices.

    Returns:
        ``K`` thresholds (``inf`` for a class without rows).
    """
    table = np.asarray(probs, dtype=np.float64)
    given = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(given, minlength=table.shape[1]).astype(np.float64)
    sums = np.zeros(table.shape[1])
    np.add.at(sums, given, table[np.arange(len(given)), given])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, _UNSEEN_THRESHOLD)


def find_label_issues(
    probs: npt.ArrayLike,
    labels: npt.ArrayLike,
    thresholds: npt.ArrayLike | None = None,
) -> list[LabelIssue]:
    """The rows confident learning flags, most suspicious first.

    Args:
        probs: ``N x K`` out-of-sample probabilities (rows sum to 1).
        labels: ``N`` given class indices.
        thresholds: Per-class thresholds; default :func:`class_thresholds` of
            ``probs`` (pass the train split's to audit other splits by them).

    Returns:
        The flagged rows, by descending :attr:`LabelIssue.score` (ties: row order).

    Raises:
        ValueError: When shapes disagree or a label is out of range.
    """
    table = np.asarray(probs, dtype=np.float64)
    given = np.asarray(labels, dtype=np.int64)
    if table.ndim != 2 or given.shape != (len(table),):
        raise ValueError(
            f"expected N x K probabilities and N labels, got {table.shape} and "
            f"{given.shape}"
        )
    if len(given) and (given.min() < 0 or given.max() >= table.shape[1]):
        raise ValueError(f"labels must be class indices 0..{table.shape[1] - 1}")
    limits = class_thresholds(table, given) if thresholds is None else thresholds
    rows = np.arange(len(given))
    clears = table >= np.asarray(limits)[None, :]
    clears[rows, given] = False  # another class must clear its own threshold
    below = table[rows, given] < np.asarray(limits)[given]
    flagged = below & clears.any(axis=1)
    candidates = np.where(clears, table, -np.inf)
    issues = [
        LabelIssue(
            row=int(i),
            given=int(given[i]),
            suggested=int(candidates[i].argmax()),
            p_given=float(table[i, given[i]]),
            p_suggested=float(candidates[i].max()),
        )
        for i in rows[flagged]
    ]
    return sorted(issues, key=lambda issue: -issue.score)
