"""The group key (``core.groups``): one answer to "which rows form a track"."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_training.core.groups import (
    GroupKeyError,
    group_coverage,
    group_label,
    group_of,
    group_rows,
    is_ungrouped,
    metadata_value,
    require_group_key,
)
from classifier_training.core.readers import Sample


def row(line: int, label: str, metadata: dict[str, object] | None) -> Sample:
    return Sample(Path(f"img{line}.png"), label, Path("a.jsonl"), line, metadata)


def test_dotted_key_reads_nested_metadata_as_text() -> None:
    meta = {"clip": {"track": 17}, "track_id": "g3-p17", "none": None}
    assert metadata_value(meta, "clip.track") == "17"
    assert metadata_value(meta, "track_id") == "g3-p17"
    assert metadata_value(meta, "none") is None
    assert metadata_value(meta, "clip") is None  # a mapping is not a value
    assert metadata_value(meta, "clip.track.deeper") is None
    assert metadata_value(None, "track_id") is None


@pytest.mark.parametrize("key", ["", ".a", "a..b", "a."])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(GroupKeyError, match="dotted path"):
        metadata_value({}, key)


def test_rows_without_the_key_are_their_own_groups() -> None:
    rows = [
        row(1, "7", {"t": "a"}),
        row(2, "7", {"t": "a"}),
        row(3, "7", None),
        row(4, "7", {"other": 1}),
        row(5, "", {"t": 5}),
    ]
    groups = group_rows(rows, "t")
    assert list(groups.values()) == [[0, 1], [2], [3], [4]]
    assert [is_ungrouped(g) for g in groups] == [False, True, True, False]
    assert group_of(rows[4], "t") == "5"
    # Without a key every row is its own group.
    assert len(group_rows(rows, None)) == 5
    coverage = group_coverage(rows, "t")
    assert (coverage.rows, coverage.with_key, coverage.missing) == (5, 3, 2)


def test_a_key_no_row_carries_names_key_and_file() -> None:
    rows = [row(1, "7", {"t": "a"})]
    require_group_key(rows, "t", "a.jsonl")
    with pytest.raises(GroupKeyError, match=r"a\.jsonl: no row has metadata\.track"):
        require_group_key(rows, "track", "a.jsonl")


def test_group_label_is_the_most_frequent_non_empty_label() -> None:
    assert group_label(["", "23", "", "23", "28"]) == "23"
    assert group_label(["", "", ""]) == ""
    assert group_label([]) == ""
    assert group_label(["28", "23", "23", "28"]) == "28"  # tie: first seen
