"""``classifier-split``: groups never cross splits, stratified, deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.core.group_split import (
    assign_splits,
    check_ratios,
    fold_counts,
    summarize,
)
from classifier_training.core.readers import Sample, find_splits, read_split
from classifier_training.split import REPORT_FILE, main

LABELS = ("", "7", "10", "23")


def track_rows(tracks: int, seed: int = 0) -> list[Sample]:
    """Rows of ``tracks`` tracks (3-10 frames, one label each, skewed classes)."""
    rng = np.random.default_rng(seed)
    rows: list[Sample] = []
    for track in range(tracks):
        label = LABELS[rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
        for frame in range(int(rng.integers(3, 11))):
            rows.append(
                Sample(
                    Path(f"/pool/t{track}_{frame}.png"),
                    label,
                    Path("/pool/annotations.jsonl"),
                    len(rows) + 1,
                    {"game": f"g{track % 7}", "track_id": f"t{track}"},
                )
            )
    return rows


def write_pool(root: Path, tracks: int = 24, seed: int = 0) -> Path:
    """A JSONL pool below ``root`` in two game folders, tiny distinct images."""
    rng = np.random.default_rng(seed)
    by_game: dict[Path, list[str]] = defaultdict(list)
    for sample in track_rows(tracks, seed):
        game = root / sample.metadata["game"]  # type: ignore[index]
        name = f"images/{sample.image.name}"
        (game / "images").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(game / name)
        row = {
            "image": name,
            "prefix": "jersey number",
            "suffix": sample.label,
            "metadata": dict(sample.metadata or {}, frame=name),
        }
        by_game[game].append(json.dumps(row) + "\n")
    for game, lines in by_game.items():
        (game / "annotations.jsonl").write_text("".join(lines), encoding="utf-8")
    return root


def run_split(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "classifier_training.split", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_a_group_never_crosses_splits_across_20_seeds() -> None:
    rows = track_rows(60)
    ratios = check_ratios([0.8, 0.1, 0.1])
    assignments = set()
    for seed in range(20):
        splits = assign_splits(rows, ["track_id"], ratios, seed)
        where: dict[str, set[str]] = defaultdict(set)
        for sample, split in zip(rows, splits, strict=True):
            where[sample.metadata["track_id"]].add(split)  # type: ignore[index]
        assert all(len(s) == 1 for s in where.values())
        assert set(splits) == {"train", "val", "test"}
        assignments.add(tuple(splits))
    assert len(assignments) == 20  # the seed matters


def test_the_first_key_is_the_unit_and_later_keys_are_its_fallback() -> None:
    rows = track_rows(40)
    # a game's tracks stay together; rows without a game fall back to the track
    for index in range(0, 30):
        rows[index] = Sample(
            rows[index].image,
            rows[index].label,
            rows[index].source,
            rows[index].line,
            {"track_id": rows[index].metadata["track_id"]},  # type: ignore[index]
        )
    splits = assign_splits(
        rows, ["game", "track_id"], check_ratios([0.6, 0.2, 0.2]), seed=3
    )
    games: dict[str, set[str]] = defaultdict(set)
    tracks: dict[str, set[str]] = defaultdict(set)
    for sample, split in zip(rows, splits, strict=True):
        meta = sample.metadata or {}
        if "game" in meta:
            games[meta["game"]].add(split)
        tracks[meta["track_id"]].add(split)
    assert all(len(s) == 1 for s in games.values())
    assert all(len(s) == 1 for s in tracks.values())


def test_rows_sharing_an_image_share_a_split() -> None:
    rows = track_rows(30)
    shared = rows[0].image
    rows[-1] = Sample(shared, rows[-1].label, rows[-1].source, rows[-1].line, {})
    for seed in range(5):
        splits = assign_splits(
            rows, ["track_id"], check_ratios([0.5, 0.25, 0.25]), seed
        )
        assert splits[0] == splits[-1]


def test_stratified_within_two_points_and_ratios_within_one() -> None:
    """300 tracks of 3-10 frames, four classes 40/30/20/10 %: every split's class
    shares stay within 2 points of the pool's, its row share within 1 point."""
    rows = track_rows(300, seed=1)
    ratios = check_ratios([0.8, 0.1, 0.1])
    for seed in range(3):
        table = summarize(rows, assign_splits(rows, ["track_id"], ratios, seed), [])
        for line, wanted in zip(table[1:], ratios, strict=True):
            assert line.share_gap <= 2.0, (seed, line)
            assert abs(line.rows / len(rows) - wanted) <= 0.01, (seed, line)


@pytest.mark.parametrize(
    ("ratios", "units", "folds"),
    [
        ((0.8, 0.1, 0.1), 500, (8, 1, 1)),
        ((0.7, 0.15, 0.15), 500, (14, 3, 3)),
        ((0.8, 0.2, 0.0), 500, (4, 1, 0)),
        ((0.8, 0.1, 0.1), 4, (2, 1, 1)),  # few groups: one fold each at least
        ((1 / 3, 1 / 3, 1 / 3), 500, (1, 1, 1)),
    ],
)
def test_fold_counts(
    ratios: tuple[float, ...], units: int, folds: tuple[int, ...]
) -> None:
    assert fold_counts(ratios, units) == folds


def test_cli_writes_the_jsonl_layout_deterministically(tmp_path: Path) -> None:
    pool = write_pool(tmp_path / "pool")
    first, again, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    result = run_split(pool, "--out", first, "--by", "track_id", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "max share diff" in result.stdout
    assert (
        main([str(pool), "--out", str(again), "--by", "track_id", "--seed", "5"]) == 0
    )
    assert (
        main([str(pool), "--out", str(other), "--by", "track_id", "--seed", "6"]) == 0
    )
    written = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert written == sorted(
        p.relative_to(again) for p in again.rglob("*") if p.is_file()
    )
    for relative in written:
        assert (first / relative).read_bytes() == (again / relative).read_bytes()
    assert (first / "test" / "annotations.jsonl").read_bytes() != (
        other / "test" / "annotations.jsonl"
    ).read_bytes()
    # the reader takes it as it is; every row kept its keys and metadata
    assert set(find_splits(first)) == {"train", "val", "test"}
    pool_rows = {
        json.loads(line)["metadata"]["frame"]: json.loads(line)
        for jsonl in pool.rglob("annotations.jsonl")
        for line in jsonl.read_text(encoding="utf-8").splitlines()
    }
    seen = 0
    for split in ("train", "valid", "test"):
        samples = read_split(first / split)
        for sample in samples:
            assert sample.image.is_relative_to(first / split)
            original = pool_rows[sample.metadata["frame"]]  # type: ignore[index]
            assert sample.metadata == original["metadata"]
            assert sample.label == original["suffix"]
            source = pool / original["metadata"]["game"] / original["image"]
            assert os.path.samefile(sample.image, source)  # hard link by default
        seen += len(samples)
    assert seen == len(pool_rows)
    report = json.loads((first / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["by"] == ["track_id"]
    assert report["splits"]["pool"]["rows"] == seen
    assert sum(report["splits"][s]["rows"] for s in ("train", "valid", "test")) == seen


@pytest.mark.parametrize("link", ["copy", "symlink"])
def test_copy_and_symlink_layouts_read_back(tmp_path: Path, link: str) -> None:
    pool = write_pool(tmp_path / "pool", tracks=12)
    out = tmp_path / "out"
    assert main([str(pool), "--out", str(out), "--link", link]) == 0
    for split in ("train", "valid", "test"):
        for sample in read_split(out / split):
            assert sample.image.is_relative_to(out / split)
            assert sample.image.is_symlink() == (link == "symlink")
            if link == "copy":
                assert sample.image.stat().st_nlink == 1
            Image.open(sample.image).verify()


def test_class_folder_pool_becomes_jsonl(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    rng = np.random.default_rng(0)
    for label in ("3", "7", "9"):
        (pool / label).mkdir(parents=True)
        for index in range(10):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(pool / label / f"{index}.png")
    out = tmp_path / "out"
    assert main([str(pool), "--out", str(out)]) == 0
    samples = [
        s for split in ("train", "valid", "test") for s in read_split(out / split)
    ]
    assert len(samples) == 30
    assert {s.label for s in read_split(out / "train")} == {"3", "7", "9"}
    assert all(s.line is not None for s in samples)  # JSONL rows


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_refusals_name_the_culprit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = write_pool(tmp_path / "pool", tracks=12)
    out = str(tmp_path / "out")
    err = error_line(capsys, [str(pool), "--out", out, "--by", "player"])
    assert f"{pool}: no row has metadata.player" in err
    err = error_line(capsys, [str(pool), "--out", out, "--ratios", "0.8", "0.1", "0.2"])
    assert "sum to 1.1, not 1" in err
    err = error_line(capsys, [str(pool), "--out", str(pool / "g0")])
    assert "must not be the pool" in err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine", encoding="utf-8")
    err = error_line(capsys, [str(pool), "--out", out])
    assert "exists and is not empty" in err
    assert main([str(pool), "--out", out, "--overwrite"]) == 0
    assert not (tmp_path / "out" / "notes.txt").exists()
    assert (tmp_path / "out" / "train" / "annotations.jsonl").is_file()
    err = error_line(
        capsys,
        [str(pool), "--out", str(tmp_path / "x"), "--by", "game", "--ratios"]
        + ["0.2"] * 5,
    )
    assert "expected 2 or 3 values" in err


def test_too_few_groups_and_eval_only_classes_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = tmp_path / "pool"
    (pool / "images").mkdir(parents=True)
    lines = []
    for track, label in enumerate(("7", "10")):
        for frame in range(3):
            name = f"images/{track}_{frame}.png"
            Image.new("RGB", (8, 8), (track * 90, frame * 60, 0)).save(pool / name)
            lines.append(
                json.dumps({"image": name, "suffix": label, "metadata": {"t": track}})
            )
    jsonl = pool / "annotations.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    err = error_line(capsys, [str(pool), "--out", out, "--by", "t"])
    assert "the pool has 2 groups (by t), fewer than the 3 splits" in err
    # three tracks, one class each, one split each: two classes never trained on
    Image.new("RGB", (8, 8), (0, 0, 200)).save(pool / "images" / "x.png")
    with jsonl.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"image": "images/x.png", "suffix": "23"}) + "\n")
    err = error_line(
        capsys,
        [str(pool), "--out", out, "--by", "t", "--ratios", "0.34", "0.33", "0.33"],
    )
    assert "would be only in valid/test" in err
    assert sum(f"'{c}' (" in err for c in ("7", "10", "23")) == 2
    assert not (tmp_path / "out").exists()
    # bad input in the pool names file and line; class folders have no metadata
    with jsonl.open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    err = error_line(capsys, [str(pool), "--out", out])
    assert f"{jsonl}:8: not valid JSON" in err
    folders = tmp_path / "folders"
    (folders / "7").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folders / "7" / "a.png")
    err = error_line(capsys, [str(folders), "--out", out, "--by", "t"])
    assert "needs JSONL annotations" in err
