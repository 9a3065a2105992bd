"""One answer per track: aggregate a track's per-frame probabilities.

A jersey number belongs to a player track (tens of crops, most unreadable), and
the answer that matters is one label per track. Every place that answers per
track (``classifier-evaluate --group-by``, ``classifier-predict --group-by``, the
Python classifier, the training metric ``val/track_top1``) calls
:func:`aggregate_track`, so a rule means the same everywhere.

The rules, over the track's *legible* frames (those whose most probable class is
not the empty label ``""``), with each frame's probabilities renormalised over the
non-empty classes:

* ``logprob``: sum of log-probabilities (independent evidence from each frame);
  confidence = the winner's share of the normalised product.
* ``mean``: mean probability; confidence = the winner's mean probability.
* ``vote``: each frame votes for its best class with its probability as weight;
  confidence = the winner's votes over the number of legible frames (frames that
  voted for another class lower it, as does a single unsure frame).

A track with no legible frame answers ``""`` (confidence: the mean probability of
``""``). Below ``min_confidence`` the track abstains (``label`` is ``None``).
Ties go to the lower class index. Without an empty class (a generic dataset)
every frame is legible and the rules run over all classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from classifier_training.core.calibration import COVERAGE_THRESHOLDS
from classifier_training.core.groups import group_label

AggregationRule = Literal["logprob", "mean", "vote"]
AGGREGATION_RULES: tuple[str, ...] = get_args(AggregationRule)
#: The rule that won on the synthetic track set (benchmarks/README.md, "Tracks").
DEFAULT_RULE: AggregationRule = "logprob"
EMPTY_LABEL = ""
#: Floor of a renormalised probability before its log (a frame never vetoes).
_LOG_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class TrackAnswer:
    """The answer for one track.

    Attributes:
        label: The class name; ``""`` when no frame is legible; ``None`` when the
            track abstains (confidence below the threshold).
        confidence: Confidence of the best label, 0-1 (reported even when the
            track abstains).
        best: The best label before abstention.
        frames: Frames in the track.
        frames_used: Frames that contributed (the legible ones).
    """

    label: str | None
    confidence: float
    best: str
    frames: int
    frames_used: int

    @property
    def abstained(self) -> bool:
        """Whether the track gave no answer (confidence below the threshold)."""
        return self.label is None

    def to_json(self) -> dict[str, Any]:
        """The answer as plain JSON values."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "best": self.best,
            "frames": self.frames,
            "frames_used": self.frames_used,
        }


def check_rule(rule: str) -> AggregationRule:
    """``rule`` if it names an aggregation rule.

    Raises:
        ValueError: Naming the rule and the choices.
    """
    if rule not in AGGREGATION_RULES:
        raise ValueError(
            f"unknown track aggregation rule {rule!r}; choose one of "
            f"{', '.join(AGGREGATION_RULES)}"
        )
    return rule  # type: ignore[return-value]


def _number_scores(
    probs: npt.NDArray[np.float64], rule: AggregationRule
) -> npt.NDArray[np.float64]:
    """Per-class scores (0-1) of ``F x K`` renormalised probabilities."""
    if rule == "mean":
        return np.asarray(probs.mean(axis=0), dtype=np.float64)
    if rule == "vote":
        weights = np.zeros(probs.shape[1])
        np.add.at(weights, probs.argmax(axis=1), probs.max(axis=1))
        return np.asarray(weights / len(probs), dtype=np.float64)
    log_sum = np.log(np.maximum(probs, _LOG_FLOOR)).sum(axis=0)
    shifted = np.exp(log_sum - log_sum.max())
    return np.asarray(shifted / shifted.sum(), dtype=np.float64)


def aggregate_track(
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    rule: AggregationRule = DEFAULT_RULE,
    min_confidence: float = 0.0,
) -> TrackAnswer:
    """One answer for a track from its frames' calibrated probabilities.

    Args:
        probs: ``F x C`` per-frame probabilities (rows sum to 1), ``F >= 1``.
        class_names: The ``C`` class names in index order (``""`` = no number).
        rule: ``logprob``, ``mean`` or ``vote`` (module docstring).
        min_confidence: Abstain (``label=None``) below this confidence.

    Returns:
        The track's answer.

    Raises:
        ValueError: For an empty track or a shape that does not match the names.
    """
    table = np.asarray(probs, dtype=np.float64)
    if table.ndim != 2 or len(table) == 0 or table.shape[1] != len(class_names):
        raise ValueError(
            f"expected F x {len(class_names)} probabilities with F >= 1, "
            f"got shape {table.shape}"
        )
    rule = check_rule(rule)
    names = list(class_names)
    number_columns = [i for i, name in enumerate(names) if name != EMPTY_LABEL]
    legible = (
        table.argmax(axis=1) != names.index(EMPTY_LABEL)
        if EMPTY_LABEL in names
        else np.ones(len(table), dtype=bool)
    )
    if not legible.any():
        best, confidence = EMPTY_LABEL, float(table[:, names.index(EMPTY_LABEL)].mean())
        used = 0
    else:
        numbers = table[legible][:, number_columns]
        numbers = numbers / np.maximum(numbers.sum(axis=1, keepdims=True), 1e-12)
        scores = _number_scores(numbers, rule)
        winner = int(scores.argmax())
        best, confidence = names[number_columns[winner]], float(scores[winner])
        used = int(legible.sum())
    label = best if confidence >= min_confidence else None
    return TrackAnswer(label, confidence, best, len(table), used)


@dataclass(frozen=True, slots=True)
class TrackScore:
    """Track-level accuracy of a set of answers.

    Attributes:
        tracks: Number of tracks.
        correct: Tracks whose answer equals the truth (abstentions are wrong).
        answered: Tracks that did not abstain.
        correct_answered: Correct answers among those.
    """

    tracks: int
    correct: int
    answered: int
    correct_answered: int

    @property
    def top1(self) -> float:
        """Correct answers over all tracks (an abstention counts as wrong)."""
        return self.correct / self.tracks if self.tracks else 0.0

    @property
    def coverage(self) -> float:
        """Share of tracks answered."""
        return self.answered / self.tracks if self.tracks else 0.0

    @property
    def accuracy_answered(self) -> float:
        """Accuracy over the answered tracks (1.0 when none was answered)."""
        return self.correct_answered / self.answered if self.answered else 1.0


def score_tracks(answers: Sequence[TrackAnswer], truths: Sequence[str]) -> TrackScore:
    """Compare track answers with the tracks' true labels."""
    if len(answers) != len(truths):
        raise ValueError(f"{len(answers)} answers for {len(truths)} tracks")
    hits = [a.label == t for a, t in zip(answers, truths, strict=True)]
    answered = [not a.abstained for a in answers]
    return TrackScore(
        tracks=len(answers),
        correct=sum(hits),
        answered=sum(answered),
        correct_answered=sum(h and a for h, a in zip(hits, answered, strict=True)),
    )


def track_rows(groups: Sequence[str]) -> dict[str, list[int]]:
    """Row indices of each track, tracks in order of first appearance.

    Args:
        groups: The track id of each row.
    """
    rows: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        rows.setdefault(group, []).append(index)
    return rows


def answer_tracks(
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    groups: Sequence[str],
    rule: AggregationRule = DEFAULT_RULE,
    min_confidence: float = 0.0,
) -> dict[str, TrackAnswer]:
    """One answer per track from per-row probabilities.

    Args:
        probs: ``N x C`` per-row probabilities.
        class_names: The ``C`` class names in index order.
        groups: The track id of each of the ``N`` rows.
        rule: The aggregation rule.
        min_confidence: Abstain below this confidence.

    Returns:
        Track id to answer, tracks in order of first appearance.
    """
    table = np.asarray(probs, dtype=np.float64)
    if len(groups) != len(table):
        raise ValueError(f"{len(groups)} track ids for {len(table)} rows")
    return {
        group: aggregate_track(table[rows], class_names, rule, min_confidence)
        for group, rows in track_rows(groups).items()
    }


def track_truths(labels: Sequence[str], groups: Sequence[str]) -> dict[str, str]:
    """The true label of each track (:func:`~.groups.group_label` of its rows).

    Args:
        labels: The label of each row.
        groups: The track id of each row.

    Returns:
        Track id to label, tracks in order of first appearance.
    """
    return {
        group: group_label(labels[i] for i in rows)
        for group, rows in track_rows(groups).items()
    }


def at_threshold(answer: TrackAnswer, min_confidence: float) -> TrackAnswer:
    """``answer`` as :func:`aggregate_track` gives it with ``min_confidence``."""
    label = answer.best if answer.confidence >= min_confidence else None
    return replace(answer, label=label)


def track_risk_coverage(
    answers: Sequence[TrackAnswer],
    truths: Sequence[str],
    thresholds: Sequence[float] = COVERAGE_THRESHOLDS,
) -> list[dict[str, float | int]]:
    """Coverage and accuracy of the tracks answered at each confidence threshold.

    The track-level twin of :func:`~.calibration.risk_coverage`, with the same
    columns: ``threshold``, ``kept`` (tracks answered), ``coverage``,
    ``accuracy`` (on the answered tracks; 1.0 when none is) and ``risk``.
    """
    table: list[dict[str, float | int]] = []
    for threshold in thresholds:
        score = score_tracks([at_threshold(a, threshold) for a in answers], truths)
        table.append(
            {
                "threshold": float(threshold),
                "kept": score.answered,
                "coverage": score.coverage,
                "accuracy": score.accuracy_answered,
                "risk": 1.0 - score.accuracy_answered,
            }
        )
    return table
