"""Readers: layouts, discovery, ordering of classes, unknown labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier_training.core.readers import (
    DataError,
    Problem,
    build_class_to_idx,
    detect_layout,
    display_name,
    find_splits,
    read_split,
    split_known,
)
from tests.helpers import class_image, write_jsonl_split


def test_jsonl_layout_is_detected_and_read(jsonl_root: Path) -> None:
    samples = read_split(jsonl_root / "train")
    assert detect_layout(jsonl_root / "train") == "jsonl"
    assert len(samples) == 18
    assert {s.label for s in samples} == {"", "7", "23"}
    assert all(s.image.is_file() for s in samples)
    assert samples[0].line == 1
    assert samples[0].source.name == "annotations.jsonl"
    assert samples[0].metadata == {"variant": 0}


def test_annotation_files_are_found_recursively(tmp_path: Path) -> None:
    split = tmp_path / "train"
    write_jsonl_split(split, ["1", "2"], 2, subdir="game_a")
    write_jsonl_split(split, ["3"], 3, subdir="game_b/period_2")
    samples = read_split(split)
    assert len(samples) == 7
    assert {s.label for s in samples} == {"1", "2", "3"}
    # image paths are relative to their own annotations.jsonl
    assert all("game_b" in str(s.image) for s in samples if s.label == "3")


def test_one_image_in_several_rows_gives_several_samples(tmp_path: Path) -> None:
    split = tmp_path / "train"
    (split / "images").mkdir(parents=True)
    class_image(0, 0).save(split / "images" / "shared.png")
    rows = [{"image": "images/shared.png", "prefix": "p", "suffix": s} for s in "abc"]
    (split / "annotations.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    samples = read_split(split)
    assert [s.label for s in samples] == ["a", "b", "c"]
    assert len({s.image for s in samples}) == 1


def test_blank_lines_are_ignored_but_counted(tmp_path: Path) -> None:
    jsonl = write_jsonl_split(tmp_path / "train", ["1"], 2)
    first, second = jsonl.read_text().splitlines()
    # Physical lines: 1 blank, 2 row, 3 whitespace only, 4 blank, 5 row.
    jsonl.write_text(f"\n{first}\n  \t\n\n{second}\n\n")
    samples = read_split(tmp_path / "train")
    assert [s.line for s in samples] == [2, 5]
    assert samples[1].where == f"{jsonl}:5"


def test_bad_row_after_blank_lines_gets_its_physical_line_number(
    tmp_path: Path,
) -> None:
    jsonl = write_jsonl_split(tmp_path / "train", ["1"], 2)
    first, second = jsonl.read_text().splitlines()
    jsonl.write_text(f"{first}\n\n\n{second}\n   \n{{oops\n")
    with pytest.raises(DataError) as info:
        read_split(tmp_path / "train")
    assert str(info.value).startswith(f"{jsonl}:6: not valid JSON")
    problems: list[Problem] = []
    assert [s.line for s in read_split(tmp_path / "train", problems)] == [1, 4]
    assert [(p.where, p.message[:14]) for p in problems] == [
        (f"{jsonl}:6", "not valid JSON")
    ]


def test_folder_layout_is_detected_and_read(folder_root: Path) -> None:
    assert detect_layout(folder_root / "train") == "folder"
    samples = read_split(folder_root / "train")
    assert len(samples) == 15
    assert [s.label for s in samples[:5]] == ["cat"] * 5
    assert all(s.line is None for s in samples)


def test_folder_layout_ignores_hidden_folders_and_non_images(folder_root: Path) -> None:
    (folder_root / "train" / ".cache").mkdir()
    (folder_root / "train" / "cat" / "notes.txt").write_text("not an image")
    assert len(read_split(folder_root / "train")) == 15


def test_class_to_idx_is_sorted_with_empty_label_first() -> None:
    mapping = build_class_to_idx(["23", "7", "", "10", "7"])
    assert mapping == {"": 0, "10": 1, "23": 2, "7": 3}
    assert display_name("") == "<empty>"
    assert display_name("7") == "7"


def test_unknown_labels_are_excluded_and_counted(jsonl_root: Path) -> None:
    samples = read_split(jsonl_root / "valid")
    mapping = build_class_to_idx(["", "7"])
    kept, excluded = split_known(samples, mapping)
    assert len(kept) == 4
    assert excluded.count == 2
    assert excluded.labels == {"23": 2}
    assert "excluded 2 row(s)" in excluded.summary("valid")
    assert "'23'" in excluded.summary("valid")


def test_find_splits_accepts_val_alias(folder_root: Path) -> None:
    splits = find_splits(folder_root)
    assert splits["val"] == folder_root / "val"
    assert splits["test"] == folder_root / "test"


def test_find_splits_rejects_both_valid_and_val(jsonl_root: Path) -> None:
    (jsonl_root / "val").mkdir()
    with pytest.raises(DataError, match="both valid/ and val/"):
        find_splits(jsonl_root)


def test_missing_data_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        find_splits(tmp_path / "nope")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"suffix": "1"}', "missing required key 'image'"),
        ('{"image": "images/c0_0.png"}', "missing required key 'suffix'"),
        ('{"image": "images/c0_0.png", "suffix": 7}', "must be a string"),
        ('{"image": "../outside.png", "suffix": "1"}', "escapes the split folder"),
        ('{"image": "/etc/passwd", "suffix": "1"}', "is absolute"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    jsonl = write_jsonl_split(tmp_path / "train", ["1"], 2)
    jsonl.write_text(jsonl.read_text() + line + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_split(tmp_path / "train")
    assert f"{jsonl}:3" in str(info.value)
