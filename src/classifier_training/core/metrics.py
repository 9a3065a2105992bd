"""Metric rules shared by training, evaluation and prediction (numpy, no torch)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: The ``k`` of the reported top-k accuracy (``acc_top5``), before capping.
TOP_K = 5


def cap_top_k(top_k: int, num_classes: int) -> int:
    """``top_k`` limited to ``1..num_classes`` (fewer classes than 5: top-5 is top-K).

    Args:
        top_k: The requested ``k``.
        num_classes: Number of classes.

    Returns:
        The ``k`` actually used.
    """
    return max(1, min(top_k, num_classes))


def per_class_scores(matrix: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
    """Precision, recall, F1 and support per class from a confusion matrix.

    The definitions of torchmetrics' ``average=None`` metrics, in numpy (the ONNX
    evaluation path imports no torch): precision of a class never predicted is
    0, and so are the scores of a class without rows.

    Args:
        matrix: ``C x C`` counts; rows are true classes, columns predictions.

    Returns:
        ``precision``, ``recall``, ``f1`` (float64) and ``support`` (rows per true
        class), each of length ``C``.
    """
    counts = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(counts)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)

    def ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    return {
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, support),
        "f1": ratio(2 * tp, support + predicted),
        "support": support,
    }


def confusion_counts(
    targets: npt.NDArray[Any], predicted: npt.NDArray[Any], num_classes: int
) -> npt.NDArray[np.int64]:
    """``C x C`` counts; rows are true classes, columns predictions."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets), np.asarray(predicted)), 1)
    return matrix
