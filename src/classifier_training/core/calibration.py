"""Confidence calibration with numpy: temperature fit, ECE, reliability, coverage.

Temperature scaling divides the logits by one number ``T`` before the softmax;
``T`` is chosen to minimise the negative log-likelihood of held-out labels
(Guo et al., 2017). It never changes which class wins, only how sure the model
says it is. Everything here is torch-free, so ``classifier-evaluate`` on an ONNX
model and the training run share it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Bins of the expected calibration error and the reliability diagram.
ECE_BINS = 15
#: Confidence thresholds of the risk-coverage table.
COVERAGE_THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Range searched for the temperature (outside it the data say "degenerate").
TEMPERATURE_RANGE = (0.01, 100.0)


def softmax(logits: npt.NDArray[Any], temperature: float = 1.0) -> npt.NDArray[Any]:
    """Row-wise softmax of ``logits / temperature`` in float64.

    Args:
        logits: ``N x C`` scores (raw logits, or log-probabilities).
        temperature: The divisor (> 0).

    Returns:
        ``N x C`` probabilities.
    """
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def nll(
    logits: npt.NDArray[Any], targets: npt.NDArray[Any], temperature: float = 1.0
) -> float:
    """Mean negative log-likelihood of ``targets`` under ``softmax(logits / T)``."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    picked = scaled[np.arange(len(scaled)), targets]
    return float(np.mean(log_z - picked))


def _nll_slope(
    logits: npt.NDArray[np.float64], targets: npt.NDArray[Any], beta: float
) -> float:
    """d NLL / d beta at inverse temperature ``beta``: E_p[z] - z_y, averaged."""
    probs = softmax(logits * beta)
    expected = (probs * logits).sum(axis=1)
    return float(np.mean(expected - logits[np.arange(len(logits)), targets]))


def fit_temperature(
    logits: npt.NDArray[Any], targets: npt.NDArray[Any], iterations: int = 60
) -> float:
    """The temperature that minimises the NLL of ``targets`` (Guo et al., 2017).

    The NLL is convex in the inverse temperature ``beta = 1/T`` and its slope
    ``E_p[z] - z_y`` grows with ``beta``, so bisection on the slope's sign (in
    log-space, within :data:`TEMPERATURE_RANGE`) finds the minimum without a step
    size to tune. A validation set the model gets entirely right asks for
    ``T -> 0``; the search range keeps the result finite.

    Args:
        logits: ``N x C`` raw logits of held-out rows.
        targets: ``N`` true class indices.
        iterations: Bisection steps (60 reach float precision).

    Returns:
        The temperature (> 0); 1.0 when there are no rows.

    Raises:
        ValueError: If shapes disagree or a target is out of range.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    if z.ndim != 2 or y.shape != (len(z),):
        raise ValueError(f"logits {z.shape} and targets {y.shape} do not match")
    if len(z) == 0:
        return 1.0
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"targets must lie in 0..{z.shape[1] - 1}")
    low_t, high_t = TEMPERATURE_RANGE
    lo, hi = math.log(1 / high_t), math.log(1 / low_t)  # log beta
    if _nll_slope(z, y, math.exp(lo)) >= 0:
        return high_t
    if _nll_slope(z, y, math.exp(hi)) <= 0:
        return low_t
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if _nll_slope(z, y, math.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(1 / math.exp((lo + hi) / 2))


def degenerate_calibration(
    logits: npt.NDArray[Any], targets: npt.NDArray[Any], temperature: float
) -> str | None:
    """Why a fitted temperature should not be trusted, if it should not.

    A temperature on a bound of :data:`TEMPERATURE_RANGE` is where the search
    stopped, not a minimum; a model whose top-1 is no better than always
    answering the most frequent class (within two standard errors) has nothing
    to calibrate: the fit then flattens every confidence towards ``1 / C``.

    Args:
        logits: ``N x C`` raw logits the temperature was fitted on.
        targets: ``N`` true class indices.
        temperature: The fitted temperature.

    Returns:
        The reason in words, or ``None`` when the calibration is usable.
    """
    low, high = TEMPERATURE_RANGE
    if temperature >= high * (1 - 1e-6) or temperature <= low * (1 + 1e-6):
        return (
            f"the fitted temperature {temperature:.4g} is a bound of its range "
            f"({low:g} to {high:g})"
        )
    y = np.asarray(targets, dtype=np.int64)
    if len(y) == 0:
        return None
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
    chance = float(np.bincount(y).max() / len(y))
    margin = 2 * math.sqrt(chance * (1 - chance) / len(y))
    if accuracy <= chance + margin:
        return (
            f"the model is at chance on validation (top-1 {100 * accuracy:.1f}% "
            f"vs {100 * chance:.1f}% for always the most frequent class)"
        )
    return None


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins: what the model said against what happened.

    Attributes:
        edges: ``bins + 1`` bin edges on [0, 1].
        confidence: Mean top-1 confidence per bin (NaN when empty).
        accuracy: Top-1 accuracy per bin (NaN when empty).
        counts: Rows per bin.
    """

    edges: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of |acc - conf| x share."""
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / total)


def reliability(
    probs: npt.NDArray[Any], targets: npt.NDArray[Any], bins: int = ECE_BINS
) -> Reliability:
    """Bin rows by top-1 confidence (the last bin includes 1.0).

    Args:
        probs: ``N x C`` probabilities.
        targets: ``N`` true class indices.
        bins: Number of equal-width bins.

    Returns:
        The per-bin statistics.
    """
    p = np.asarray(probs, dtype=np.float64)
    confidence = p.max(axis=1) if len(p) else np.zeros(0)
    correct = (p.argmax(axis=1) == np.asarray(targets)) if len(p) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    hit_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / counts, np.nan)
        accuracy = np.where(counts > 0, hit_sum / counts, np.nan)
    return Reliability(edges, mean_conf, accuracy, counts)


def expected_calibration_error(
    probs: npt.NDArray[Any], targets: npt.NDArray[Any], bins: int = ECE_BINS
) -> float:
    """ECE of top-1 confidences in ``bins`` equal-width bins."""
    return reliability(probs, targets, bins).ece


def risk_coverage(
    probs: npt.NDArray[Any],
    targets: npt.NDArray[Any],
    thresholds: Sequence[float] = COVERAGE_THRESHOLDS,
) -> list[dict[str, float | int]]:
    """Accuracy on the rows kept when predictions below a confidence are refused.

    Args:
        probs: ``N x C`` probabilities.
        targets: ``N`` true class indices.
        thresholds: Minimum top-1 confidence to answer.

    Returns:
        One row per threshold: ``threshold``, ``kept`` (rows answered),
        ``coverage`` (share answered), ``accuracy`` (top-1 on the answered rows;
        1.0 when none is answered: no answer is never wrong) and ``risk``
        (``1 - accuracy``).
    """
    p = np.asarray(probs, dtype=np.float64)
    total = len(p)
    confidence = p.max(axis=1) if total else np.zeros(0)
    correct = p.argmax(axis=1) == np.asarray(targets) if total else np.zeros(0, bool)
    rows: list[dict[str, float | int]] = []
    for threshold in thresholds:
        kept = confidence >= threshold
        count = int(kept.sum())
        accuracy = float(correct[kept].mean()) if count else 1.0
        rows.append(
            {
                "threshold": float(threshold),
                "kept": count,
                "coverage": count / total if total else 0.0,
                "accuracy": accuracy,
                "risk": 1.0 - accuracy,
            }
        )
    return rows


def calibration_summary(
    logits: npt.NDArray[Any], targets: npt.NDArray[Any], temperature: float
) -> dict[str, Any]:
    """ECE and NLL before and after dividing by ``temperature``, for one split.

    Args:
        logits: ``N x C`` raw logits.
        targets: ``N`` true class indices.
        temperature: The fitted temperature.

    Returns:
        ``rows``, ``ece_before``, ``ece_after``, ``nll_before``, ``nll_after`` and
        the risk-coverage table of the calibrated confidences.
    """
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "rows": len(targets),
        "ece_before": expected_calibration_error(before, targets),
        "ece_after": expected_calibration_error(after, targets),
        "nll_before": nll(logits, targets) if len(targets) else 0.0,
        "nll_after": nll(logits, targets, temperature) if len(targets) else 0.0,
        "risk_coverage": risk_coverage(after, targets),
    }
