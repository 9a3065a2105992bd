"""Groups of rows that belong together: the frames of one player track, one game.

Video crops are not independent samples: the frames of one track are near-copies
of each other. A *group key* names the metadata field that says which rows belong
together (``data.group_key``, ``--group-by``, ``--by``): a dotted path into a JSONL
row's ``metadata`` (``track_id``, ``clip.track``). Every feature that needs groups
(track-level answers, group splits, leakage checks, fold assignment of the label
audit) reads them through this module, so "which rows form a group" has one
answer everywhere.

A row without the key is a group of its own (:func:`group_of` gives it an id made
from its ``file:line``, which no metadata value can collide with).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifier_training.core.readers import DataError, Sample

#: Prefix of the id of a row without the group key (its own group).
UNGROUPED_PREFIX = "\x00row:"


class GroupKeyError(DataError):
    """A group key is malformed, or names a field that no row carries."""


def parse_group_key(key: str) -> tuple[str, ...]:
    """Split a dotted group key into its path (``"clip.track"`` -> two parts).

    Raises:
        GroupKeyError: For an empty key or an empty part (``"a..b"``).
    """
    parts = tuple(key.split("."))
    if not key or any(not part for part in parts):
        raise GroupKeyError(
            f"group key {key!r}: expected a dotted path into metadata, "
            "e.g. track_id or clip.track"
        )
    return parts


def metadata_value(metadata: Mapping[str, Any] | None, key: str) -> str | None:
    """The value at the dotted ``key`` of ``metadata``, as text (``None``: absent).

    Values are compared as text, so ``17`` and ``"17"`` name one group; ``null``
    counts as absent.
    """
    node: Any = metadata
    for part in parse_group_key(key):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if node is None or isinstance(node, Mapping | list):
        return None
    return str(node)


def group_value(sample: Sample, key: str) -> str | None:
    """The group ``sample`` belongs to by ``key``, or ``None`` when it has none."""
    return metadata_value(sample.metadata, key)


def group_of(sample: Sample, key: str | None) -> str:
    """The id of ``sample``'s group: the key's value, else one of its own.

    Args:
        sample: The row.
        key: The group key; ``None`` makes every row its own group.
    """
    value = group_value(sample, key) if key is not None else None
    return value if value is not None else f"{UNGROUPED_PREFIX}{sample.where}"


def is_ungrouped(group_id: str) -> bool:
    """Whether ``group_id`` is the own group of a row without the key."""
    return group_id.startswith(UNGROUPED_PREFIX)


@dataclass(frozen=True, slots=True)
class GroupCoverage:
    """How many rows of a set carry the group key.

    Attributes:
        key: The group key.
        rows: Rows looked at.
        with_key: Rows that carry it.
    """

    key: str
    rows: int
    with_key: int

    @property
    def missing(self) -> int:
        """Rows without the key (each is its own group)."""
        return self.rows - self.with_key


def group_coverage(samples: Iterable[Sample], key: str) -> GroupCoverage:
    """Count the rows of ``samples`` that carry ``key``."""
    rows = with_key = 0
    for sample in samples:
        rows += 1
        with_key += group_value(sample, key) is not None
    return GroupCoverage(key, rows, with_key)


def require_group_key(samples: Sequence[Sample], key: str, where: str) -> None:
    """Refuse a group key that no row of ``samples`` carries.

    Args:
        samples: The rows (of one file, split or pool).
        key: The group key.
        where: The file or folder the rows came from, for the message.

    Raises:
        GroupKeyError: Naming the key and ``where`` when no row has the key.
    """
    parse_group_key(key)
    if samples and group_coverage(samples, key).with_key == 0:
        raise GroupKeyError(
            f"{where}: no row has metadata.{key} (group key {key!r}); "
            "check the spelling, or leave the group key unset"
        )


def group_rows(samples: Iterable[Sample], key: str | None) -> dict[str, list[int]]:
    """Row indices of each group, groups in order of first appearance."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        groups[group_of(sample, key)].append(index)
    return dict(groups)


def group_label(labels: Iterable[str]) -> str:
    """The label of a group: its most frequent non-empty label, ``""`` if none.

    Ties go to the label seen first, so the answer does not depend on hashing.
    """
    counts = Counter(label for label in labels if label)
    if not counts:
        return ""
    return counts.most_common(1)[0][0]


def check_split_groups(
    rows: Mapping[str, Sequence[Sample]],
    layouts: Mapping[str, str],
    split_dirs: Mapping[str, Any],
    key: str,
) -> dict[str, GroupCoverage]:
    """Check a dataset's splits against a group key; count the rows that carry it.

    Args:
        rows: Rows per split.
        layouts: ``jsonl`` or ``folder`` per split.
        split_dirs: The folder of each split, for messages.
        key: The group key.

    Returns:
        The key's coverage per split (rows without it are their own groups).

    Raises:
        GroupKeyError: For a split in the class-folder layout (no metadata), or
            when no row of any split carries the key.
    """
    parse_group_key(key)
    for split, layout in layouts.items():
        if layout != "jsonl":
            raise GroupKeyError(
                f"{split_dirs.get(split)}: group key {key!r} needs JSONL "
                "annotations with metadata; the class-folder layout has none"
            )
    coverage = {split: group_coverage(samples, key) for split, samples in rows.items()}
    if not any(c.with_key for c in coverage.values()):
        where = ", ".join(str(split_dirs.get(split)) for split in rows)
        raise GroupKeyError(
            f"{where}: no row has metadata.{key} (group key {key!r}); check the "
            "spelling, or leave the group key unset"
        )
    return coverage
