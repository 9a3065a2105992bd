"""The accuracy guard: a reduced-precision model is kept only if it answers
(nearly) as the fp32 model does.

Both models are evaluated on one labelled split by
:func:`classifier_training.inference.evaluate.evaluate_samples`, the code behind
``classifier-evaluate``, so ``classifier-evaluate`` of a kept file reproduces
the guard's top-1. Recorded: top-1 of both, the drop in percentage points,
agreement (share of rows whose top-1 class is the same) and the largest
difference between the two models' confidence in their own answer
(calibrated, per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier_training.core.readers import DataError, Sample
from classifier_training.inference.base import Classifier
from classifier_training.inference.evaluate import evaluate_samples

#: Largest top-1 drop (percentage points) a kept file may show by default.
DEFAULT_MAX_DROP = 0.5


@dataclass(frozen=True)
class GuardResult:
    """The guard's figures for one file.

    Attributes:
        precision: The checked file's precision.
        split: The split evaluated.
        rows: Rows evaluated.
        top1_fp32: Top-1 of the fp32 model (0-1).
        top1: Top-1 of the checked model (0-1).
        agreement: Share of rows where both predict the same class (0-1).
        max_confidence_diff: Largest per-row difference of the confidences.
        max_drop: The allowed drop, percentage points.
    """

    precision: str
    split: str
    rows: int
    top1_fp32: float
    top1: float
    agreement: float
    max_confidence_diff: float
    max_drop: float

    @property
    def drop(self) -> float:
        """Top-1 lost against fp32, in percentage points (negative: gained)."""
        return 100.0 * (self.top1_fp32 - self.top1)

    @property
    def passed(self) -> bool:
        """Whether the drop is within ``max_drop``."""
        return self.drop <= self.max_drop + 1e-9

    def describe(self) -> str:
        """One line of figures."""
        return (
            f"{self.precision} vs fp32 on {self.split} ({self.rows} rows): top-1 "
            f"{self.top1:.2%} vs {self.top1_fp32:.2%} (drop {self.drop:.2f} points, "
            f"allowed {self.max_drop:.2f}), same top-1 answer on "
            f"{self.agreement:.2%} of rows, max confidence difference "
            f"{self.max_confidence_diff:.3f}"
        )

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON (drop and verdict included)."""
        return {
            "split": self.split,
            "rows": self.rows,
            "top1_fp32": self.top1_fp32,
            "top1": self.top1,
            "drop_points": self.drop,
            "max_drop_points": self.max_drop,
            "agreement": self.agreement,
            "max_confidence_diff": self.max_confidence_diff,
            "passed": self.passed,
        }


def run_guard(
    reference: Classifier,
    candidate: Classifier,
    samples: list[Sample],
    split: str,
    precision: str,
    max_drop: float = DEFAULT_MAX_DROP,
    batch_size: int = 64,
) -> GuardResult:
    """Evaluate the fp32 model and a candidate on the same rows and compare them.

    Args:
        reference: The fp32 model.
        candidate: The int8 or fp16 model.
        samples: The split's rows.
        split: Its name.
        precision: The candidate's precision, for the record.
        max_drop: Largest allowed top-1 drop, percentage points.
        batch_size: Images per network call.

    Returns:
        The figures (see :attr:`GuardResult.passed`).

    Raises:
        DataError: If an image is missing or unreadable, or no row has a label
            the model knows.
    """
    ours = evaluate_samples(reference, samples, batch_size)
    if not ours.samples:
        raise DataError(
            f"{split}: no rows with a label the model knows "
            f"({ours.excluded.count} excluded); the guard has nothing to compare"
        )
    theirs = evaluate_samples(candidate, samples, batch_size)
    confidence_gap = np.abs(ours.probs.max(axis=1) - theirs.probs.max(axis=1))
    return GuardResult(
        precision=precision,
        split=split,
        rows=len(ours.samples),
        top1_fp32=float(ours.metrics()["top1"]),
        top1=float(theirs.metrics()["top1"]),
        agreement=float((ours.predicted == theirs.predicted).mean()),
        max_confidence_diff=float(confidence_gap.max()),
        max_drop=max_drop,
    )
