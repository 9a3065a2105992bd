"""Track aggregation rules (``core.tracks``) against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classifier_training.core.tracks import (
    TrackAnswer,
    aggregate_track,
    answer_tracks,
    at_threshold,
    check_rule,
    score_tracks,
    track_risk_coverage,
    track_truths,
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


def test_rows_of_many_tracks_are_answered_per_track_in_first_seen_order() -> None:
    probs = [*TRACK, [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]]
    groups = ["t1", "t1", "t2", "t1", "t2", "t3"]
    answers = answer_tracks(probs, NAMES, groups, "mean")
    assert list(answers) == ["t1", "t2", "t3"]
    # t1: frames 0 (illegible), 1, 3 -> 13 with (0.8 + 0.45) / 2; t2: frames 2, 4.
    assert answers["t1"] == aggregate_track(
        [TRACK[0], TRACK[1], TRACK[3]], NAMES, "mean"
    )
    assert answers["t1"].confidence == pytest.approx((0.8 + 0.45) / 2)
    assert answers["t2"].label == "18"
    assert answers["t2"].confidence == pytest.approx((0.6 + 0.8 / 0.9) / 2)
    assert answers["t3"] == TrackAnswer("", pytest.approx(0.9), "", 1, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 track ids for 6 rows"):
        answer_tracks(probs, NAMES, ["a", "b"])


def test_track_truth_is_the_most_frequent_number_of_its_rows() -> None:
    truths = track_truths(
        ["", "13", "18", "13", "", ""], ["a", "a", "a", "a", "b", "c"]
    )
    assert truths == {"a": "13", "b": "", "c": ""}


def test_track_risk_coverage_rethresholds_the_answers() -> None:
    answers = [
        TrackAnswer("13", 0.95, "13", 5, 3),
        TrackAnswer("18", 0.75, "18", 5, 2),
        TrackAnswer("7", 0.55, "7", 5, 5),
        TrackAnswer("", 0.9, "", 4, 0),
    ]
    truths = ["13", "13", "7", ""]
    assert at_threshold(answers[1], 0.8).abstained
    assert at_threshold(TrackAnswer(None, 0.7, "7", 1, 1), 0.5).label == "7"
    table = track_risk_coverage(answers, truths, (0.0, 0.7, 0.92, 0.99))
    assert [row["kept"] for row in table] == [4, 3, 1, 0]
    assert [row["coverage"] for row in table] == [1.0, 0.75, 0.25, 0.0]
    assert table[0]["accuracy"] == 0.75  # track top-1: one wrong answer
    assert table[1]["accuracy"] == pytest.approx(2 / 3)
    assert table[2]["accuracy"] == 1.0
    assert table[3]["accuracy"] == 1.0  # nothing answered, nothing wrong
    assert table[1]["risk"] == pytest.approx(1 / 3)
