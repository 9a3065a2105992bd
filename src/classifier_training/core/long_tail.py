"""Long-tail rules in numpy: post-hoc logit adjustment and the rare classes.

* **Post-hoc logit adjustment** (Menon et al., ICLR 2021): a model trained with
  plain cross-entropy learns ``p(y | x)`` under the train split's class priors;
  subtracting ``tau * log(prior)`` from its logits moves the decision towards
  balanced classes (``tau = 1``: the Bayes rule for a balanced test). The
  training-time variant lives in :mod:`classifier_training.models.losses`.
* **The rare classes** (the "few-shot" split of the long-tail literature): the
  rarest third of the classes by train count, on which ``top1_rare`` is scored.

Torch-free: ``classifier-evaluate`` on an ONNX model and ``classifier-predict``
use it as the training run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Share of the classes, the rarest by train count, that ``top1_rare`` scores.
RARE_SHARE = 1 / 3


def log_priors(train_counts: Sequence[int]) -> npt.NDArray[np.float64]:
    """``log(n_j / N)`` of the train split's class counts.

    Raises:
        ValueError: If a class has no train rows (its prior would be 0).
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    if (counts <= 0).any():
        missing = np.flatnonzero(counts <= 0).tolist()
        raise ValueError(f"class index(es) {missing[:10]} have no train rows")
    return np.asarray(np.log(counts / counts.sum()))


def adjust_logits(
    logits: npt.NDArray[Any], train_counts: Sequence[int], tau: float
) -> npt.NDArray[np.float64]:
    """Post-hoc logit adjustment: ``logits - tau * log(prior)``.

    Args:
        logits: ``N x C`` raw logits.
        train_counts: Train rows per class (the priors).
        tau: Strength (``>= 0``; 0 leaves the logits as they are).

    Returns:
        ``N x C`` adjusted logits (float64).

    Raises:
        ValueError: On ``tau < 0``, a count per class that does not match the
            logits' classes, or a class without train rows.
    """
    if tau < 0:
        raise ValueError(f"the logit adjustment tau must be >= 0, got {tau}")
    scores = np.asarray(logits, dtype=np.float64)
    if len(train_counts) != scores.shape[1]:
        raise ValueError(
            f"{len(train_counts)} class priors for {scores.shape[1]} model outputs"
        )
    if tau == 0:
        return scores
    return np.asarray(scores - tau * log_priors(train_counts))


def rare_classes(
    train_counts: Sequence[int], share: float = RARE_SHARE
) -> npt.NDArray[np.int64]:
    """Indices of the rarest ``share`` of the classes by train count.

    ``max(1, round(share * C))`` classes; ties go to the lower class index.
    """
    counts = np.asarray(train_counts)
    size = max(1, round(share * len(counts)))
    return np.asarray(np.argsort(counts, kind="stable")[:size], dtype=np.int64)


def top1_rare(
    predicted: npt.NDArray[Any],
    targets: npt.NDArray[Any],
    train_counts: Sequence[int],
) -> float | None:
    """Top-1 accuracy over the rows of the :func:`rare_classes`.

    Returns:
        The accuracy, or ``None`` when no row belongs to a rare class.
    """
    rows = np.isin(np.asarray(targets), rare_classes(train_counts))
    if not rows.any():
        return None
    return float((np.asarray(predicted)[rows] == np.asarray(targets)[rows]).mean())


def per_class_top1(
    predicted: npt.NDArray[Any], targets: npt.NDArray[Any], num_classes: int
) -> npt.NDArray[np.float64]:
    """Top-1 (recall) per true class; NaN for a class without rows."""
    targets = np.asarray(targets)
    hits = np.bincount(
        targets[np.asarray(predicted) == targets], minlength=num_classes
    ).astype(np.float64)
    support = np.bincount(targets, minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(support > 0, hits / support, np.nan))
