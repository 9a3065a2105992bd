"""Confident learning (``core.confident_learning``) on a hand-computed table."""

from __future__ import annotations

import numpy as np
import pytest

from classifier_training.core.confident_learning import (
    class_thresholds,
    find_label_issues,
    label_reason,
)

# Three classes. Rows 0-2 labelled 0, rows 3-5 labelled 1, rows 6-7 labelled 2.
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # 0: fine
        [0.80, 0.10, 0.10],  # 1: fine
        [0.10, 0.85, 0.05],  # 2: labelled 0, reads as 1 -> flagged
        [0.10, 0.80, 0.10],  # 3: fine
        [0.20, 0.70, 0.10],  # 4: fine
        [0.30, 0.30, 0.40],  # 5: labelled 1, unsure; 2 clears t2? no -> kept
        [0.05, 0.05, 0.90],  # 6: fine
        [0.65, 0.05, 0.30],  # 7: labelled 2, reads as 0 -> flagged
    ]
)
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])


def test_thresholds_are_mean_self_confidence() -> None:
    thresholds = class_thresholds(PROBS, LABELS)
    assert thresholds == pytest.approx([(0.9 + 0.8 + 0.1) / 3, 0.6, 0.6])


def test_flags_rows_below_their_threshold_with_another_class_clear() -> None:
    # t = (0.6, 0.6, 0.6). Row 2: p(0)=0.1 < 0.6 and p(1)=0.85 >= 0.6 -> 1.
    # Row 5: p(1)=0.3 < 0.6 but no other class reaches 0.6 -> not flagged.
    # Row 7: p(2)=0.3 < 0.6 and p(0)=0.65 >= 0.6 -> 0.
    issues = find_label_issues(PROBS, LABELS)
    assert [(i.row, i.given, i.suggested) for i in issues] == [(2, 0, 1), (7, 2, 0)]
    assert issues[0].score == pytest.approx(0.75)  # ranked by margin
    assert issues[1].score == pytest.approx(0.35)
    assert (issues[1].p_given, issues[1].p_suggested) == (0.3, 0.65)


def test_given_thresholds_audit_another_split() -> None:
    other = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    issues = find_label_issues(other, [1, 2], thresholds=np.array([0.6, 0.6, 0.6]))
    assert [(i.row, i.suggested) for i in issues] == [(0, 0)]


def test_a_class_without_rows_is_never_suggested() -> None:
    probs = np.array([[0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    assert class_thresholds(probs, [0, 0, 1])[2] == np.inf
    assert [i.row for i in find_label_issues(probs, [0, 0, 1])] == []


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="N x K"):
        find_label_issues(PROBS, LABELS[:3])
    with pytest.raises(ValueError, match="class indices"):
        find_label_issues(PROBS, np.full(8, 3))


@pytest.mark.parametrize(
    ("given", "suggested", "reason"),
    [
        ("18", "13", "likely_wrong_label"),
        ("18", "", "likely_unreadable"),
        ("", "18", "likely_readable"),
    ],
)
def test_the_reason_names_the_empty_label_when_it_is_involved(
    given: str, suggested: str, reason: str
) -> None:
    assert label_reason(given, suggested) == reason
