"""Track-level evaluation: the ``tracks`` section of ``classifier-evaluate --group-by``.

A split whose JSONL rows carry a track id in ``metadata`` (``--group-by KEY``) is
also scored per track: each track's rows get one answer from their calibrated
probabilities (:func:`~classifier_training.core.tracks.answer_tracks`, ``--rule``)
and are compared with the track's truth (its most frequent non-empty label).
The section records the track top-1 beside the frame top-1, the coverage and
accuracy of the answered tracks at each confidence threshold (the frame-level
risk-coverage table's twin) and the worst tracks; :func:`plot_worst_tracks`
draws a strip of each worst track's frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_training.core.calibration import COVERAGE_THRESHOLDS
from classifier_training.core.groups import (
    UNGROUPED_PREFIX,
    GroupCoverage,
    check_split_groups,
    group_coverage,
    group_of,
    require_group_key,
)
from classifier_training.core.image_io import load_image
from classifier_training.core.preprocessing import resize_to_input
from classifier_training.core.readers import Sample, display_name
from classifier_training.core.tracks import (
    AggregationRule,
    TrackAnswer,
    answer_tracks,
    score_tracks,
    track_risk_coverage,
    track_rows,
    track_truths,
)
from classifier_training.plots import BACKGROUND, GridTile, render_grid, save_image

#: Frames drawn per worst track (evenly spread over a longer track).
STRIP_FRAMES = 12


def check_track_key(
    samples: Sequence[Sample], key: str, split: str, split_dir: Path, layout: str
) -> GroupCoverage:
    """Refuse a group key the split cannot carry; count the rows without it.

    Raises:
        GroupKeyError: For the class-folder layout, or when no row has the key
            (naming the key and the annotation file).
    """
    if layout != "jsonl":  # refused there, in the words every command uses
        check_split_groups({split: samples}, {split: layout}, {split: split_dir}, key)
    files = sorted({str(sample.source) for sample in samples})
    require_group_key(samples, key, ", ".join(files) or str(split_dir))
    return group_coverage(samples, key)


@dataclass
class TrackEvaluation:
    """One answer per track of an evaluated split.

    Attributes:
        key: The group key (``--group-by``).
        rule: The aggregation rule.
        min_confidence: Tracks below it abstain.
        class_names: Class names in index order.
        groups: The track id of each evaluated row.
        answers: Track id to answer, tracks in order of first appearance.
        truths: Track id to true label.
        coverage: Rows with and without the key.
    """

    key: str
    rule: AggregationRule
    min_confidence: float
    class_names: list[str]
    groups: list[str]
    answers: dict[str, TrackAnswer]
    truths: dict[str, str]
    coverage: GroupCoverage

    def worst(self, limit: int) -> list[str]:
        """Up to ``limit`` tracks whose best guess is wrong, most confident first."""
        wrong = [t for t, a in self.answers.items() if a.best != self.truths[t]]
        return sorted(wrong, key=lambda t: -self.answers[t].confidence)[:limit]

    def summary(self, frame_top1: float, worst: int = 10) -> dict[str, Any]:
        """The ``tracks`` section of ``summary.json``."""
        answers = list(self.answers.values())
        truths = [self.truths[t] for t in self.answers]
        score = score_tracks(answers, truths)
        rows = track_rows(self.groups)
        return {
            "key": self.key,
            "rule": self.rule,
            "min_confidence": self.min_confidence,
            "num_tracks": score.tracks,
            "rows_without_key": self.coverage.missing,
            "top1": score.top1,
            "frame_top1": frame_top1,
            "coverage": score.coverage,
            "accuracy_answered": score.accuracy_answered,
            "risk_coverage": track_risk_coverage(answers, truths, COVERAGE_THRESHOLDS),
            "worst": [
                {
                    "track": display_track(track),
                    "truth": display_name(self.truths[track]),
                    "answer": (
                        None
                        if self.answers[track].label is None
                        else display_name(self.answers[track].best)
                    ),
                    "best": display_name(self.answers[track].best),
                    "confidence": self.answers[track].confidence,
                    "frames": self.answers[track].frames,
                    "frames_used": self.answers[track].frames_used,
                    "first_row": rows[track][0],
                }
                for track in self.worst(worst)
            ],
        }


def display_track(track: str) -> str:
    """A track id for people (a row without the key shows its ``file:line``)."""
    return track.removeprefix(UNGROUPED_PREFIX)


def evaluate_tracks(
    probs: npt.NDArray[Any],
    class_names: Sequence[str],
    samples: Sequence[Sample],
    key: str,
    rule: AggregationRule,
    min_confidence: float = 0.0,
    coverage: GroupCoverage | None = None,
) -> TrackEvaluation:
    """Answer and score every track of an evaluated split.

    Args:
        probs: ``N x C`` calibrated probabilities of the evaluated rows.
        class_names: Class names in index order.
        samples: The ``N`` evaluated rows.
        key: The group key.
        rule: The aggregation rule.
        min_confidence: Abstain below this track confidence.
        coverage: Rows with and without the key (default: counted here).

    Returns:
        The track evaluation.
    """
    groups = [group_of(sample, key) for sample in samples]
    return TrackEvaluation(
        key=key,
        rule=rule,
        min_confidence=min_confidence,
        class_names=list(class_names),
        groups=groups,
        answers=answer_tracks(probs, class_names, groups, rule, min_confidence),
        truths=track_truths([s.label for s in samples], groups),
        coverage=coverage or group_coverage(samples, key),
    )


def plot_worst_tracks(
    tracks: TrackEvaluation,
    probs: npt.NDArray[Any],
    samples: Sequence[Sample],
    class_to_idx: Mapping[str, int],
    path: Path,
    limit: int = 10,
    tile: int = 64,
) -> Path:
    """Save one strip of frames per worst track (frame label, prediction).

    Args:
        tracks: The track evaluation.
        probs: ``N x C`` probabilities of the evaluated rows.
        samples: The evaluated rows.
        class_to_idx: Class name to index.
        path: The ``.png`` to write (atomically).
        limit: Worst tracks drawn.
        tile: Tile side in pixels.

    Returns:
        ``path``.
    """
    rows = track_rows(tracks.groups)
    sections = []
    for track in tracks.worst(limit):
        frames = rows[track]
        shown = [
            frames[int(i)]
            for i in np.unique(
                np.linspace(0, len(frames) - 1, min(len(frames), STRIP_FRAMES))
                .round()
                .astype(int)
            )
        ]
        answer = tracks.answers[track]
        said = display_name(answer.best) + ("" if answer.label is not None else "?")
        heading = (
            f"{display_track(track)}: truth {display_name(tracks.truths[track])}, "
            f"answer {said} ({answer.confidence:.0%}, {answer.frames_used} of "
            f"{answer.frames} frames legible"
            + (f", {len(shown)} shown)" if len(shown) < len(frames) else ")")
        )
        tiles = [
            GridTile(
                index=row,
                image=np.asarray(
                    resize_to_input(
                        load_image(samples[row].image), tile, "letterbox", BACKGROUND
                    )
                ),
                label=class_to_idx[samples[row].label],
                pred=int(probs[row].argmax()),
                confidence=float(probs[row].max()),
            )
            for row in shown
        ]
        sections.append((heading, tiles))
    names = [display_name(name) for name in tracks.class_names]
    wrong = sum(a.best != tracks.truths[t] for t, a in tracks.answers.items())
    title = (
        f"{len(sections)} most confident of {wrong} wrong tracks "
        f"of {len(tracks.answers)} ({tracks.rule})"
        if sections
        else f"no wrong track of {len(tracks.answers)} ({tracks.rule})"
    )
    grid = render_grid(sections, names, title, tile, columns=STRIP_FRAMES)
    return save_image(grid, path)
