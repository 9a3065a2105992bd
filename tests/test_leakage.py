"""Leakage counts a training run records (core.leakage, data.leakage_check)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from classifier_training.config import DataModuleConfig
from classifier_training.core.leakage import leakage_warning, split_leakage
from classifier_training.core.readers import read_split
from classifier_training.data.leakage_check import check_leakage
from tests.helpers import make_jsonl_dataset, run_train
from tests.test_check_data import make_planted_dataset
from tests.test_train_e2e import FAST


def planted_rows(root: Path) -> tuple[dict[str, list], set[tuple[str, str]]]:  # type: ignore[type-arg]
    planted = make_planted_dataset(root)
    rows = {s: read_split(root / d) for s, d in (("train", "train"), ("test", "test"))}
    rows["val"] = read_split(root / "valid")
    return rows, planted


def test_counts_are_stored_and_reused(tmp_path: Path) -> None:
    rows, planted = planted_rows(tmp_path / "d")
    cache = tmp_path / "cache"
    counts = split_leakage(rows, cache)
    assert counts["near_duplicate_pairs_by_split"]["test-train"] >= len(planted) - 1
    assert counts["near_duplicate_pairs"] == sum(
        counts["near_duplicate_pairs_by_split"].values()
    )
    assert counts["group_key"] is None
    assert counts["group_leaks"] is None
    (stored,) = cache.glob("near-duplicate-pairs-*.json")
    # a rerun on the same images reads the stored counts instead of searching
    mark = dict(counts, near_duplicate_pairs=999)
    stored.write_text(json.dumps(mark), encoding="utf-8")
    assert split_leakage(rows, cache)["near_duplicate_pairs"] == 999
    # other images (one test file less) are counted again
    rows["test"] = rows["test"][:-1]
    assert split_leakage(rows, cache)["near_duplicate_pairs"] < 999


def test_the_warning_names_counts_and_command(tmp_path: Path) -> None:
    rows, _ = planted_rows(tmp_path / "d")
    for split, count in (("train", 2), ("test", 1)):
        rows[split][:count] = [
            replace(sample, metadata={"track_id": "t1"})
            for sample in rows[split][:count]
        ]
    counts = split_leakage(rows, tmp_path / "cache", key="track_id")
    assert counts["group_leaks"] == 1
    line = leakage_warning(counts, tmp_path / "d", tmp_path / "cache")
    assert line is not None
    pairs = counts["near_duplicate_pairs"]
    assert f"{pairs} near-duplicate image pair(s) across splits (val-train 0" in line
    assert "1 track_id group(s) in several splits" in line
    assert line.endswith(
        f"classifier-check-data {tmp_path / 'd'} --group-by track_id "
        f"--cache-dir {tmp_path / 'cache'}"
    )
    assert "\n" not in line
    clean = dict(counts, near_duplicate_pairs=0, group_leaks=0)
    assert leakage_warning(clean, tmp_path / "d") is None


def test_the_training_check_follows_its_setting(tmp_path: Path) -> None:
    rows, _ = planted_rows(tmp_path / "d")
    config = DataModuleConfig(data_root=tmp_path / "d")
    counts = check_leakage(config, lambda split: rows.get(split, []))
    assert counts is not None
    assert counts["near_duplicate_pairs"] > 0
    assert list((tmp_path / "d" / ".cache").glob("near-duplicate-*"))  # default dir
    off = DataModuleConfig(data_root=tmp_path / "d", check_leakage=False)
    assert check_leakage(off, lambda split: rows.get(split, [])) is None


@pytest.mark.slow
def test_training_warns_once_and_records_the_counts(tmp_path: Path) -> None:
    """The shared test dataset repeats train images in valid/test (same pixels),
    and its ``variant`` metadata spans every split: both kinds of leakage."""
    root = make_jsonl_dataset(tmp_path / "data")
    out = tmp_path / "run"
    result = run_train(
        tmp_path,
        f"data.data_root={root}",
        f"hydra.run.dir={out}",
        "data.group_key=variant",
        *FAST,
    )
    lines = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "data leakage:" in line
    ]
    assert len(lines) == 1, lines
    leakage = json.loads((out / "metrics.json").read_text())["data"]["leakage"]
    assert leakage["near_duplicate_pairs"] > 0
    assert leakage["group_key"] == "variant"
    assert leakage["group_leaks"] == 2
    assert f"{leakage['near_duplicate_pairs']} near-duplicate image pair(s)" in lines[0]
    assert "2 variant group(s) in several splits" in lines[0]
    assert lines[0].endswith(f"classifier-check-data {root} --group-by variant")
    assert "may be inflated" in (out / "report.html").read_text(encoding="utf-8")
