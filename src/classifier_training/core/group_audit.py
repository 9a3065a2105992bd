"""What ``classifier-check-data --group-by KEY`` reports about groups per split.

Per split: how many groups, how many frames each (smallest, median, largest),
how many rows lack the key (each its own group, as everywhere:
:func:`~classifier_training.core.groups.group_of`), and **label conflicts**:
groups whose rows carry two different non-empty labels. One track shows one
player, so a conflict is a labelling error worth seeing (frames labelled ``""``,
number not readable, are no conflict).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifier_training.core.groups import (
    group_coverage,
    group_label,
    group_rows,
    is_ungrouped,
)
from classifier_training.core.readers import Sample, display_name


@dataclass(frozen=True, slots=True)
class GroupSizes:
    """Groups of one split.

    Attributes:
        rows: Rows of the split.
        groups: Groups (rows without the key count one each).
        without_key: Rows without the key.
        smallest: Frames of the smallest group.
        median: Median frames per group.
        largest: Frames of the largest group.
    """

    rows: int
    groups: int
    without_key: int
    smallest: int
    median: float
    largest: int

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports."""
        return {
            "rows": self.rows,
            "groups": self.groups,
            "rows_without_key": self.without_key,
            "frames_per_group": {
                "min": self.smallest,
                "median": self.median,
                "max": self.largest,
            },
        }


def group_sizes(
    rows: Mapping[str, Sequence[Sample]], key: str
) -> dict[str, GroupSizes]:
    """Group counts and frames per group of each split that has rows."""
    result: dict[str, GroupSizes] = {}
    for split, samples in rows.items():
        if not samples:
            continue
        sizes = [len(members) for members in group_rows(samples, key).values()]
        result[split] = GroupSizes(
            rows=len(samples),
            groups=len(sizes),
            without_key=group_coverage(samples, key).missing,
            smallest=min(sizes),
            median=float(statistics.median(sizes)),
            largest=max(sizes),
        )
    return result


@dataclass(frozen=True, slots=True)
class LabelConflict:
    """A group whose rows carry different non-empty labels.

    Attributes:
        split: The split.
        group: The group key's value.
        labels: Rows per label (display names), most frequent first.
        majority: The group's label (its most frequent non-empty one).
        disagreeing: ``file:line`` of each row whose non-empty label differs.
    """

    split: str
    group: str
    labels: dict[str, int]
    majority: str
    disagreeing: list[str]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports."""
        return {
            "split": self.split,
            "group": self.group,
            "labels": self.labels,
            "majority": display_name(self.majority),
            "disagreeing": self.disagreeing,
        }


def label_conflicts(
    rows: Mapping[str, Sequence[Sample]], key: str
) -> list[LabelConflict]:
    """Groups of each split holding two or more different non-empty labels."""
    found: list[LabelConflict] = []
    for split, samples in rows.items():
        for group, members in group_rows(samples, key).items():
            if is_ungrouped(group):
                continue
            labels = [samples[i].label for i in members]
            counts = Counter(label for label in labels if label)
            if len(counts) < 2:
                continue
            majority = group_label(labels)
            found.append(
                LabelConflict(
                    split=split,
                    group=group,
                    labels={
                        display_name(label): n for label, n in counts.most_common()
                    },
                    majority=majority,
                    disagreeing=[
                        samples[i].where
                        for i in members
                        if samples[i].label and samples[i].label != majority
                    ],
                )
            )
    return found
