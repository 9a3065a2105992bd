"""Temperature scaling, ECE, reliability bins and risk-coverage (numpy, no run)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from classifier_training.core.calibration import (
    TEMPERATURE_RANGE,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability,
    risk_coverage,
    softmax,
)


def _calibrated_data(
    rows: int, classes: int, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Logits and labels drawn from softmax(logits): calibrated at T = 1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, size=(rows, classes))
    probs = softmax(logits)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((rows, 1))
    labels = (draws > cumulative).sum(axis=1).clip(max=classes - 1)
    return logits, labels.astype(np.int64)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(true_temperature: float) -> None:
    logits, labels = _calibrated_data(20_000, 10, seed=1)
    # A model that reports logits x T' is calibrated after dividing by T'.
    fitted = fit_temperature(logits * true_temperature, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_fit_minimises_the_nll() -> None:
    logits, labels = _calibrated_data(3_000, 5, seed=2)
    logits = logits * 1.7
    fitted = fit_temperature(logits, labels)
    best = nll(logits, labels, fitted)
    for other in (fitted * 0.9, fitted * 1.1, 1.0):
        assert best <= nll(logits, labels, other) + 1e-12


def test_scaling_lowers_the_ece_of_an_overconfident_model() -> None:
    logits, labels = _calibrated_data(5_000, 10, seed=3)
    overconfident = logits * 3.0
    fitted = fit_temperature(overconfident[:2_500], labels[:2_500])  # "validation"
    test_logits, test_labels = overconfident[2_500:], labels[2_500:]
    before = expected_calibration_error(softmax(test_logits), test_labels)
    after = expected_calibration_error(softmax(test_logits, fitted), test_labels)
    assert before > 0.1
    assert after < before / 3


def test_temperature_never_changes_the_predicted_class() -> None:
    logits, _ = _calibrated_data(500, 7, seed=4)
    for temperature in (0.1, 1.0, 30.0):
        scaled = softmax(logits, temperature).argmax(axis=1)
        assert (scaled == logits.argmax(axis=1)).all()


def test_degenerate_inputs() -> None:
    # Every row right with a margin: the NLL keeps falling as T -> 0.
    logits = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(logits, np.array([0, 1])) == TEMPERATURE_RANGE[0]
    # Every row wrong: the NLL keeps falling as T grows.
    assert fit_temperature(logits, np.array([1, 0])) == TEMPERATURE_RANGE[1]
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, np.int64)) == 1.0
    with pytest.raises(ValueError, match="do not match"):
        fit_temperature(np.zeros((3, 2)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"targets must lie in 0\.\.1"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))


def test_reliability_bins_count_and_average() -> None:
    probs = np.array([[0.95, 0.05], [0.92, 0.08], [0.55, 0.45], [0.3, 0.7]])
    targets = np.array([0, 1, 0, 1])
    stats = reliability(probs, targets, bins=10)
    assert stats.counts.sum() == 4
    assert stats.counts[9] == 2  # 0.95 and 0.92
    assert stats.accuracy[9] == pytest.approx(0.5)
    assert stats.confidence[9] == pytest.approx(0.935)
    assert stats.counts[5] == 1
    assert stats.counts[6] == 1
    # |0.5 - 0.935| * 2/4 + |1 - 0.55| / 4 + |1 - 0.7| / 4
    assert stats.ece == pytest.approx(0.2175 + 0.1125 + 0.075)
    # Confidence exactly 1.0 falls in the last bin.
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]), 10).counts[9] == 1


def test_risk_coverage_is_monotone_and_exact() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    targets = np.array([0, 1, 0, 0])  # right, wrong, right, wrong
    rows = risk_coverage(probs, targets, (0.0, 0.65, 0.85, 0.95))
    assert [r["kept"] for r in rows] == [4, 3, 1, 0]
    assert [r["coverage"] for r in rows] == [1.0, 0.75, 0.25, 0.0]
    assert rows[0]["accuracy"] == 0.5
    assert rows[1]["accuracy"] == pytest.approx(1 / 3)
    assert rows[2]["accuracy"] == 1.0
    assert rows[3]["accuracy"] == 1.0  # nothing answered, nothing wrong
    assert all(r["risk"] == pytest.approx(1 - r["accuracy"]) for r in rows)


def test_summary_reports_before_and_after() -> None:
    logits, labels = _calibrated_data(2_000, 5, seed=5)
    summary = calibration_summary(logits * 2.0, labels, 2.0)
    assert summary["rows"] == 2_000
    assert summary["ece_after"] < summary["ece_before"]
    assert summary["nll_after"] < summary["nll_before"]
    coverage = [r["coverage"] for r in summary["risk_coverage"]]
    assert coverage == sorted(coverage, reverse=True)
