"""Row references and ``data.exclude_rows``: rows named relative to the data root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from classifier_training.config import load_data_config
from classifier_training.core.readers import read_split
from classifier_training.core.row_refs import (
    RowListError,
    check_row_list,
    read_row_list,
    row_ref,
    without_rows,
    write_row_list,
)
from classifier_training.data.datamodule import ImageFolderDataModule


def make_dm(root: Path, **overrides: Any) -> ImageFolderDataModule:
    values: dict[str, Any] = {"data_root": root, "image_size": 16, "batch_size": 4}
    values.update(num_workers=0, augment_on="workers", **overrides)
    dm = ImageFolderDataModule(load_data_config(values), arch="resnet18")
    dm.setup("fit")
    return dm


def test_references_are_relative_to_the_root_whatever_path_reaches_it(
    jsonl_root: Path, folder_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jsonl = read_split(jsonl_root / "train")
    assert row_ref(jsonl[4], jsonl_root) == "train/annotations.jsonl:5"
    folder = read_split(folder_root / "train")
    assert row_ref(folder[0], folder_root) == "train/cat/0.png"
    monkeypatch.chdir(jsonl_root.parent)
    relative = Path(jsonl_root.name)
    again = read_split(relative / "train")
    assert row_ref(again[4], relative) == "train/annotations.jsonl:5"
    assert row_ref(again[4], jsonl_root) == "train/annotations.jsonl:5"


def test_a_row_list_round_trips_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write_row_list(tmp_path / "rows.txt", ["a:1", "b/c.png"], header="two\nrows")
    assert path.read_text().startswith("# two\n# rows\n")
    path.write_text(path.read_text() + "\n   \na:1\n")
    assert read_row_list(path) == {"a:1": 3, "b/c.png": 4}


def test_an_unknown_row_is_named_with_the_list_line(jsonl_root: Path) -> None:
    rows = read_split(jsonl_root / "train")
    listed = jsonl_root / "rows.txt"
    listed.write_text("train/annotations.jsonl:2\ntrain/annotations.jsonl:99\nx.png\n")
    refs = read_row_list(listed)
    with pytest.raises(RowListError, match=r"rows.txt:2: 'train/annotations.jsonl:99'"):
        check_row_list(refs, rows, jsonl_root, listed)
    with pytest.raises(RowListError, match="2 unknown rows"):
        check_row_list(refs, rows, jsonl_root, listed)
    kept = without_rows(rows, refs, jsonl_root)
    assert len(kept) == len(rows) - 1
    assert all(s.line != 2 for s in kept)


def test_a_missing_row_list_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RowListError, match=r"absent.txt: cannot read the row list"):
        read_row_list(tmp_path / "absent.txt")


def test_exclude_rows_leaves_listed_train_rows_out_and_shares_the_cache(
    jsonl_root: Path, tmp_path: Path
) -> None:
    listed = write_row_list(
        tmp_path / "held.txt",
        ["train/annotations.jsonl:1", "train/annotations.jsonl:8"],
    )
    cache = tmp_path / "cache"
    full = make_dm(jsonl_root, cache="disk", cache_dir=cache)
    part = make_dm(jsonl_root, cache="disk", cache_dir=cache, exclude_rows=listed)
    lines = [s.line for s in part.datasets["train"].samples]
    assert len(lines) == len(full.datasets["train"]) - 2
    assert 1 not in lines
    assert 8 not in lines
    assert len(part.datasets["val"]) == len(full.datasets["val"])  # train only
    # Both runs read one cache file: it holds every train row.
    assert full.caches["train"].file is not None
    assert part.caches["train"].file == full.caches["train"].file
    assert len(list(cache.glob("*.npy"))) == len(full.caches)


def test_exclude_rows_naming_a_val_row_is_refused_at_setup(
    jsonl_root: Path, tmp_path: Path
) -> None:
    listed = tmp_path / "held.txt"
    listed.write_text("valid/annotations.jsonl:1\n")
    with pytest.raises(RowListError, match=r"held.txt:1: .* not a usable train row"):
        make_dm(jsonl_root, exclude_rows=listed)
