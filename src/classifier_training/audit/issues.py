"""From out-of-sample probabilities to flagged rows, with reasons, and their summary.

Two signals flag a row:

* **confident learning** (:mod:`classifier_training.core.confident_learning`):
  the model, which never trained on the row, confidently reads another label;
  the reason says whether the empty label ``""`` is involved (``label_reason``);
* **its track** (with a group key): another non-empty label is at least as
  frequent among the track's rows as the row's own (``18`` among ``13``,
  ``13``, ``18``; both rows of a ``13``/``18`` pair). The suggested label is the
  one of those the model finds most probable. An empty label in a track of
  numbers is no disagreement: some frames of a track are unreadable.

A row both signals flag keeps the track's reason and suggestion: the other frames
of the same player are the most direct evidence a reviewer can check.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_training.core.confident_learning import (
    Reason,
    find_label_issues,
    label_reason,
)
from classifier_training.core.groups import is_ungrouped
from classifier_training.core.io import atomic_write_text
from classifier_training.core.readers import Sample, display_name
from classifier_training.core.row_refs import row_ref


@dataclass(frozen=True, slots=True)
class Flag:
    """One flagged row (a line of ``label_issues.jsonl``).

    Attributes:
        split: ``train``, ``val`` or ``test``.
        sample: The row.
        ref: Its row reference (``train/annotations.jsonl:17``).
        given: The given label.
        suggested: The label the audit suggests.
        p_given: Calibrated probability of the given label (0 for a label the
            models do not know).
        p_suggested: Calibrated probability of the suggested label.
        reason: Why the row is flagged.
        track: Its group id, when a group key is set and the row has one.
        fold: The fold that held the row out (train rows).
    """

    split: str
    sample: Sample
    ref: str
    given: str
    suggested: str
    p_given: float
    p_suggested: float
    reason: Reason
    track: str | None = None
    fold: int | None = None

    @property
    def score(self) -> float:
        """How strongly the models disagree: ``p_suggested - p_given`` (-1..1)."""
        return self.p_suggested - self.p_given

    def to_json(self) -> dict[str, Any]:
        """The JSON line: where the row is, the labels, the evidence."""
        jsonl = self.sample.line is not None
        return {
            "split": self.split,
            "annotations": str(self.sample.source.resolve()) if jsonl else None,
            "line": self.sample.line,
            "image": str(self.sample.image.resolve()),
            "row": self.ref,
            "given": self.given,
            "suggested": self.suggested,
            "p_given": round(self.p_given, 6),
            "p_suggested": round(self.p_suggested, 6),
            "score": round(self.score, 6),
            "reason": self.reason,
            "track": self.track,
            "fold": self.fold,
        }


def track_candidates(
    labels: Sequence[str], groups: Sequence[str]
) -> dict[int, list[str]]:
    """The rows that disagree with their track, and the labels they disagree with.

    Args:
        labels: Each row's label.
        groups: Each row's group id (rows without the key stand alone).

    Returns:
        Row index to the other non-empty labels of its track that are at least
        as frequent there as the row's own (most frequent first).
    """
    members: dict[str, list[int]] = defaultdict(list)
    for row, group in enumerate(groups):
        if not is_ungrouped(group):
            members[group].append(row)
    found: dict[int, list[str]] = {}
    for rows in members.values():
        counts = Counter(labels[r] for r in rows if labels[r])
        for row in rows:
            own = labels[row]
            if not own:
                continue
            others = [
                label
                for label, count in counts.most_common()
                if label != own and count >= counts[own]
            ]
            if others:
                found[row] = others
    return found


def _probability(
    probs: npt.NDArray[np.float64], row: int, label: str, index: dict[str, int]
) -> float:
    return float(probs[row, index[label]]) if label in index else 0.0


def flag_split(
    split: str,
    samples: Sequence[Sample],
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    audited: npt.ArrayLike,
    thresholds: npt.ArrayLike,
    data_root: Path,
    groups: Sequence[str] | None = None,
    fold_of: Sequence[int] | None = None,
) -> list[Flag]:
    """The flagged rows of one split, most suspicious first.

    Args:
        split: The split's name.
        samples: Its rows.
        probs: ``N x K`` out-of-sample calibrated probabilities, columns in
            ``class_names`` order.
        class_names: The classes (the train split's).
        audited: Per row, whether confident learning may judge it (its label is
            a class its model learnt).
        thresholds: Per-class thresholds (the train split's).
        data_root: The dataset root (for row references).
        groups: Each row's group id, to flag rows that disagree with their track.
        fold_of: Each row's fold (train rows).

    Returns:
        The flags, by descending score (ties: row order).
    """
    table = np.asarray(probs, dtype=np.float64)
    index = {name: i for i, name in enumerate(class_names)}
    judged = np.flatnonzero(np.asarray(audited, dtype=bool))
    given = np.array([index[samples[r].label] for r in judged], dtype=np.int64)
    flags: dict[int, Flag] = {}

    def flag(row: int, suggested: str, reason: Reason) -> Flag:
        sample = samples[row]
        return Flag(
            split=split,
            sample=sample,
            ref=row_ref(sample, data_root),
            given=sample.label,
            suggested=suggested,
            p_given=_probability(table, row, sample.label, index),
            p_suggested=_probability(table, row, suggested, index),
            reason=reason,
            track=groups[row] if groups and not is_ungrouped(groups[row]) else None,
            fold=int(fold_of[row]) if fold_of is not None else None,
        )

    if len(judged):
        for issue in find_label_issues(table[judged], given, thresholds):
            row = int(judged[issue.row])
            suggested = class_names[issue.suggested]
            flags[row] = flag(
                row, suggested, label_reason(samples[row].label, suggested)
            )
    if groups is not None:
        labels = [s.label for s in samples]
        for row, others in track_candidates(labels, groups).items():
            best = max(others, key=lambda label: _probability(table, row, label, index))
            flags[row] = flag(row, best, "track_disagrees")
    return sorted(flags.values(), key=lambda f: -f.score)


def rank(flags: Iterable[Flag]) -> list[Flag]:
    """All flags, most suspicious first (a stable sort: ties keep their order)."""
    return sorted(flags, key=lambda f: -f.score)


def pair_summary(
    flags: Sequence[Flag], rows_per_label: Counter[str]
) -> list[dict[str, Any]]:
    """One entry per (given, suggested) pair: how many rows, what share of the class.

    Args:
        flags: The flagged rows.
        rows_per_label: Audited rows per given label (the share's denominator).

    Returns:
        ``{"given", "suggested", "count", "share_of_given", "reasons", "splits"}``
        per pair, most frequent first (then by labels).
    """
    pairs: dict[tuple[str, str], list[Flag]] = defaultdict(list)
    for f in flags:
        pairs[(f.given, f.suggested)].append(f)
    table = []
    for (given, suggested), members in pairs.items():
        total = rows_per_label.get(given, 0)
        table.append(
            {
                "given": given,
                "suggested": suggested,
                "count": len(members),
                "share_of_given": len(members) / total if total else None,
                "reasons": dict(Counter(f.reason for f in members).most_common()),
                "splits": dict(Counter(f.split for f in members).most_common()),
            }
        )
    return sorted(table, key=lambda p: (-p["count"], p["given"], p["suggested"]))


def pair_title(given: str, suggested: str) -> str:
    """``7 -> 1`` (the empty label shown as ``<empty>``)."""
    return f"{display_name(given)} -> {display_name(suggested)}"


def write_issues(path: Path, flags: Iterable[Flag]) -> Path:
    """Write ``label_issues.jsonl`` atomically, one flag per line, in order."""
    lines = (json.dumps(f.to_json(), ensure_ascii=False) + "\n" for f in flags)
    return atomic_write_text(path, "".join(lines))
