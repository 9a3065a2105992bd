"""Track aggregation rules (``core.tracks``) against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classifier_training.core.tracks import (
    TrackAnswer,
    aggregate_track,
    check_rule,
    score_tracks,
)

NAMES = ["", "13", "18"]

# Frame 0 is illegible ("" dominates) and is left out by every rule. Over the
# numbers, frames 1-3 renormalise to (0.8, 0.2), (0.4, 0.6), (0.45, 0.55).
TRACK = [
    [0.70, 0.10, 0.20],
    [0.00, 0.80, 0.20],
    [0.35, 0.26, 0.39],
    [0.00, 0.45, 0.55],
]


def test_logprob_sums_log_probabilities_of_legible_frames() -> None:
    answer = aggregate_track(TRACK, NAMES, "logprob")
    log13 = math.log(0.8) + math.log(0.4) + math.log(0.45)
    log18 = math.log(0.2) + math.log(0.6) + math.log(0.55)
    share = math.exp(log13) / (math.exp(log13) + math.exp(log18))
    assert answer.best == answer.label == "13"
    assert answer.confidence == pytest.approx(share)
    assert (answer.frames, answer.frames_used) == (4, 3)


def test_mean_averages_renormalised_probabilities() -> None:
    answer = aggregate_track(TRACK, NAMES, "mean")
    assert answer.label == "13"
    assert answer.confidence == pytest.approx((0.8 + 0.4 + 0.45) / 3)


def test_vote_weights_each_frame_by_its_confidence() -> None:
    answer = aggregate_track(TRACK, NAMES, "vote")
    # Votes: 13 with 0.8; 18 with 0.6 and 0.55 -> 18 wins, 1.15 over 3 frames.
    assert answer.label == "18"
    assert answer.confidence == pytest.approx(1.15 / 3)


def test_all_illegible_track_answers_empty() -> None:
    answer = aggregate_track([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]], NAMES)
    assert answer == TrackAnswer("", pytest.approx(0.75), "", 2, 0)  # type: ignore[arg-type]


def test_single_frame_is_its_own_answer() -> None:
    for rule in ("logprob", "mean", "vote"):
        answer = aggregate_track([[0.1, 0.3, 0.6]], NAMES, rule)  # type: ignore[arg-type]
        assert answer.label == "18"
        assert answer.confidence == pytest.approx(0.6 / 0.9)


def test_ties_go_to_the_lower_class_index() -> None:
    tied = [[0.0, 0.5, 0.5], [0.0, 0.5, 0.5]]
    for rule in ("logprob", "mean", "vote"):
        assert aggregate_track(tied, NAMES, rule).label == "13"  # type: ignore[arg-type]


def test_abstention_below_min_confidence_keeps_the_best_guess() -> None:
    answer = aggregate_track(TRACK, NAMES, "mean", min_confidence=0.6)
    assert answer.abstained
    assert answer.label is None
    assert answer.best == "13"
    assert not aggregate_track(TRACK, NAMES, "mean", min_confidence=0.5).abstained


def test_without_an_empty_class_every_frame_counts() -> None:
    answer = aggregate_track([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], ["a", "b"], "vote")
    assert answer.label == "a"
    assert answer.frames_used == 3
    assert answer.confidence == pytest.approx(1.6 / 3)


def test_bad_shapes_and_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="F x 3"):
        aggregate_track(np.zeros((0, 3)), NAMES)
    with pytest.raises(ValueError, match="F x 3"):
        aggregate_track([[0.5, 0.5]], NAMES)
    with pytest.raises(ValueError, match="unknown track aggregation rule 'max'"):
        check_rule("max")


def test_score_counts_abstentions_as_wrong_but_reports_coverage() -> None:
    answers = [
        TrackAnswer("13", 0.9, "13", 5, 3),
        TrackAnswer(None, 0.3, "18", 5, 2),
        TrackAnswer("7", 0.8, "7", 5, 5),
        TrackAnswer("", 0.9, "", 4, 0),
    ]
    score = score_tracks(answers, ["13", "18", "1", ""])
    assert (score.tracks, score.correct, score.answered) == (4, 2, 3)
    assert score.top1 == 0.5
    assert score.coverage == 0.75
    assert score.accuracy_answered == pytest.approx(2 / 3)
