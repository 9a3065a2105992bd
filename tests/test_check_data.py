"""``classifier-check-data``: full audit, leakage report, ``--json``, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.check_data import main
from classifier_training.core.readers import canonical_split
from tests.helpers import write_jsonl_split
from tests.test_near_duplicates import SIZE, changed, cut, grid, photo
from tests.test_validation import add_rows, row


def make_clean_dataset(root: Path) -> Path:
    """Train/valid/test whose images all differ (the shared helper reuses seeds)."""
    for offset, split in enumerate(("train", "valid", "test")):
        write_jsonl_split(root / split, ["", "7", "23"], 3 if split == "train" else 2)
        for index, image in enumerate(sorted((root / split / "images").iterdir())):
            rng = np.random.default_rng([offset, index])
            pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image)
    return root


def run_json(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main([str(root), "--json", "--workers", "2"])
    return code, json.loads(capsys.readouterr().out)


def test_clean_dataset_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    code, result = run_json(root, capsys)
    assert code == 0
    assert result["ok"] is True
    assert result["problems"] == []
    assert result["leakage"] == []
    assert result["splits"]["train"] == {
        "rows": 9,
        "images": 9,
        "classes": {"<empty>": 3, "23": 3, "7": 3},
    }
    # Classes in class_to_idx order: the empty label first.
    assert list(result["splits"]["train"]["classes"]) == ["<empty>", "23", "7"]
    assert result["layouts"] == {"train": "jsonl", "val": "jsonl", "test": "jsonl"}


def test_leakage_across_and_within_splits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    train_img = root / "train" / "images" / "c1_0.png"
    # Same pixels, different file format and bytes: found by the pixel hash.
    Image.open(train_img).save(root / "test" / "images" / "copy.bmp")
    add_rows(root / "test", row("images/copy.bmp", "7"))
    shutil.copy(
        root / "valid" / "images" / "c0_0.png", root / "valid" / "images" / "x.png"
    )
    add_rows(root / "valid", row("images/x.png", ""))
    code, result = run_json(root, capsys)
    assert code == 1
    cross, within = result["leakage"]
    assert cross["cross_split"] is True
    assert cross["splits"] == ["test", "train"]
    assert {f["path"] for f in cross["files"]} == {
        str(root / "test" / "images" / "copy.bmp"),
        str(train_img),
    }
    assert within["cross_split"] is False
    assert within["splits"] == ["val"]
    severities = sorted(p["severity"] for p in result["problems"])
    assert severities == ["error", "warning"]


@pytest.mark.parametrize(
    ("first", "second"), [("train", "valid"), ("valid", "test"), ("train", "test")]
)
def test_leakage_between_any_two_splits_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: str, second: str
) -> None:
    """A copy of one split's image in another split, whichever two they are."""
    root = make_clean_dataset(tmp_path / "d")
    Image.open(root / first / "images" / "c2_1.png").save(
        root / second / "images" / "leak.bmp"
    )
    add_rows(root / second, row("images/leak.bmp", "23"))
    code, result = run_json(root, capsys)
    assert code == 1
    (group,) = result["leakage"]
    assert group["cross_split"] is True
    assert group["splits"] == sorted(map(canonical_split, (first, second)))
    (error,) = [p for p in result["problems"] if p["severity"] == "error"]
    assert "identical images across splits" in error["message"]
    assert str(root / second / "images" / "leak.bmp") in error["message"]


def test_full_decode_finds_what_the_header_pass_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    image = root / "valid" / "images" / "c2_1.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(image)
    data = image.read_bytes()
    image.write_bytes(data[:200] + data[-12:])  # IEND kept: tail looks complete
    jsonl = root / "valid" / "annotations.jsonl"
    add_rows(root / "valid", "{broken", row("images/c0_0.png", 5))
    code, result = run_json(root, capsys)
    assert code == 1
    wheres = {p["where"]: p["message"] for p in result["problems"]}
    assert f"{jsonl}:7" in wheres
    assert "not valid JSON" in wheres[f"{jsonl}:7"]
    assert "must be a string" in wheres[f"{jsonl}:8"]
    assert str(image) in wheres[f"{jsonl}:6"]
    assert result["bad_images"] == 1


def test_json_report_counts_blank_lines_in_line_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    jsonl = root / "valid" / "annotations.jsonl"
    rows = jsonl.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6
    # Physical lines: 1-2 blank, 3-8 rows, 9 spaces, 10 bad label, 11 blank,
    # 12 bad JSON.
    bad_label = row("images/c0_0.png", 5)
    jsonl.write_text(
        "\n\n" + "\n".join(rows) + f"\n  \n{bad_label}\n\n{{broken\n",
        encoding="utf-8",
    )
    code, result = run_json(root, capsys)
    assert code == 1
    assert [(p["where"], p["message"]) for p in result["problems"]] == [
        (f"{jsonl}:10", "label 'suffix' must be a string, got int 5"),
        (
            f"{jsonl}:12",
            "not valid JSON (Expecting property name enclosed in double quotes)",
        ),
    ]


def test_unknown_eval_labels_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    add_rows(root / "valid", row("images/c0_0.png", "99"))
    code, result = run_json(root, capsys)
    assert code == 0
    messages = [p["message"] for p in result["problems"] if p["severity"] == "warning"]
    assert any("'99'" in m and "not a train class" in m for m in messages)


def test_rich_report_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    command = [sys.executable, "-m", "classifier_training.check_data", str(root)]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "rows per class" in ok.stdout
    assert "OK: 0 error(s)" in ok.stdout
    (root / "valid" / "images" / "c0_0.png").write_bytes(b"")
    assert main([str(root)]) == 1
    out = capsys.readouterr().out
    assert "empty image file (0 bytes)" in out
    assert "FAILED: 1 error(s)" in out
    assert main([str(tmp_path / "nope")]) == 2
    assert "data root folder does not exist" in capsys.readouterr().err


def write_tiles(split_dir: Path, tiles: list[tuple[str, np.ndarray]]) -> None:
    """Save ``(name, pixels)`` tiles as PNG, one JSONL row each (label by parity)."""
    (split_dir / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (name, pixels) in enumerate(tiles):
        Image.fromarray(pixels).save(split_dir / "images" / f"{name}.png")
        lines.append(row(f"images/{name}.png", str(index % 2)))
    (split_dir / "annotations.jsonl").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )


def make_planted_dataset(root: Path) -> set[tuple[str, str]]:
    """Tiles of real photographs; test holds distinct tiles and 6 changed copies
    of train tiles, train one shifted copy of its own. Returns the planted
    (test file, train file) pairs."""
    places = grid(("astronaut", "coffee", "chelsea"))[:30]
    photos = {name: photo(name) for name, _, _ in places}
    train = [(f"t{i}", cut(photos[n], y, x)) for i, (n, y, x) in enumerate(places)]
    name, y, x = places[0]
    train.append(("t0_shifted", cut(photos[name], y + 2, x + 3)))
    test = [
        (f"d{i}", cut(photos[n], y + SIZE, x))
        for i, (n, y, x) in enumerate(places[::3])
    ]
    planted = set()
    for kind, index in enumerate(range(4, 28, 4)):
        name, y, x = places[index]
        test.append((f"copy{index}", changed(photos[name], y, x, kind)))
        planted.add((f"copy{index}.png", f"t{index}.png"))
    rocket = photo("rocket")
    valid = [(f"v{i}", cut(rocket, 8 + 80 * i, 100)) for i in range(4)]
    write_tiles(root / "train", train)
    write_tiles(root / "test", test)
    write_tiles(root / "valid", valid)
    return planted


def test_planted_near_duplicates_are_found_and_distinct_tiles_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "d"
    planted = make_planted_dataset(root)
    out = tmp_path / "figures"
    assert main([str(root), "--json", "--out", str(out)]) == 0  # warnings only
    result = json.loads(capsys.readouterr().out)
    near = result["near_duplicates"]
    found = {
        (Path(p["files"][0]["path"]).name, Path(p["files"][1]["path"]).name)
        for p in near["cross_split"]
    }
    assert found <= planted  # no distinct tile reported
    assert len(found) >= 5  # at most one soft tile missed
    assert all(
        [f["split"] for f in p["files"]] == ["test", "train"]
        for p in near["cross_split"]
    )
    scores = [p["score"] for p in near["cross_split"]]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= near["threshold"]
    assert near["within_split"]["train"]["clusters"] == 1
    assert {Path(p).name for p in near["within_split"]["train"]["largest"]} == {
        "t0.png",
        "t0_shifted.png",
    }
    assert near["within_split"]["test"]["clusters"] == 0
    assert Path(near["figure"]) == out / "near_duplicates.png"
    with Image.open(out / "near_duplicates.png") as figure:
        assert figure.height > 96 * len(found)
    (warning,) = [p for p in result["problems"] if "near-duplicate" in p["message"]]
    assert warning["severity"] == "warning"
    assert f"{len(found)} near-duplicate pair(s)" in warning["message"]
    # a stricter threshold reports fewer; the check can be left out
    assert main([str(root), "--json", "--threshold", "0.999"]) == 0
    strict = json.loads(capsys.readouterr().out)["near_duplicates"]["cross_split"]
    assert len(strict) < len(found)
    assert main([str(root), "--json", "--no-near-duplicates"]) == 0
    assert "near_duplicates" not in json.loads(capsys.readouterr().out)
    assert main([str(root), "--threshold", "1.5"]) == 2


def test_signatures_are_computed_once_and_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    cache = tmp_path / "cache"
    args = [str(root), "--json", "--cache-dir", str(cache)]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["near_duplicates"]["signatures"]
    assert first["computed"] == 21
    assert first["reused"] == 0
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)["near_duplicates"]["signatures"]
    assert (second["computed"], second["reused"]) == (0, 21)
    # a changed file gets a new signature; a copy reuses its original's
    changed_image = root / "test" / "images" / "c0_0.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(changed_image)
    shutil.copy(
        root / "train" / "images" / "c1_0.png", root / "train" / "images" / "x.png"
    )
    add_rows(root / "train", row("images/x.png", "7"))
    assert main(args) == 0
    third = json.loads(capsys.readouterr().out)["near_duplicates"]["signatures"]
    assert (third["computed"], third["reused"]) == (1, 21)


def grouped_rows(split_dir: Path, rows: list[tuple[str, str, object]]) -> Path:
    """Rows ``(image, label, track)`` over the split's images (``None``: no key)."""
    jsonl = split_dir / "annotations.jsonl"
    lines = [
        json.dumps(
            {"image": image, "suffix": label}
            | ({} if track is None else {"metadata": {"clip": {"track": track}}})
        )
        for image, label, track in rows
    ]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jsonl


def test_group_report_conflicts_and_leaks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_clean_dataset(tmp_path / "d")
    train = grouped_rows(
        root / "train",
        [
            ("images/c0_0.png", "7", "a"),
            ("images/c0_1.png", "7", "a"),
            ("images/c0_2.png", "17", "a"),  # conflict: 7 x2, 17 x1
            ("images/c1_0.png", "", "a"),  # unreadable number: no conflict
            ("images/c1_1.png", "23", "b"),
            ("images/c1_2.png", "", "b"),
            ("images/c2_0.png", "23", None),  # own group
            ("images/c2_1.png", "7", "leaky"),
            ("images/c2_2.png", "23", 5),
        ],
    )
    test = grouped_rows(
        root / "test",
        [
            (f"images/c{i}_{j}.png", "7", "leaky" if i == 2 else f"t{i}")
            for i in range(3)
            for j in range(2)
        ],
    )
    grouped_rows(
        root / "valid", [("images/c0_0.png", "7", "v"), ("images/c0_1.png", "23", None)]
    )
    assert main([str(root), "--json", "--group-by", "clip.track"]) == 1
    result = json.loads(capsys.readouterr().out)
    groups = result["groups"]
    assert groups["splits"]["train"] == {
        "rows": 9,
        "groups": 5,
        "rows_without_key": 1,
        "frames_per_group": {"min": 1, "median": 1.0, "max": 4},
    }
    assert groups["splits"]["test"]["frames_per_group"] == {
        "min": 2,
        "median": 2.0,
        "max": 2,
    }
    (conflict,) = groups["conflicts"]
    assert conflict == {
        "split": "train",
        "group": "a",
        "labels": {"7": 2, "17": 1},
        "majority": "7",
        "disagreeing": [f"{train}:3"],
    }
    (leak,) = groups["leaks"]
    assert leak == {
        "value": "leaky",
        "splits": ["train", "test"],
        "rows": {"train": 1, "test": 2},
        "first": {"train": f"{train}:8", "test": f"{test}:5"},
    }
    errors = [p for p in result["problems"] if p["severity"] == "error"]
    assert [e["where"] for e in errors] == [f"{train}:8"]
    assert "group clip.track='leaky' is in several splits" in errors[0]["message"]
    warnings = [
        p["message"] for p in result["problems"] if "label conflict" in p["message"]
    ]
    assert len(warnings) == 1
    assert f"{train}:3" in warnings[0]
    # the text report lists them too and ends with the summary line
    assert main([str(root), "--group-by", "clip.track"]) == 1
    text = capsys.readouterr().out
    assert "groups by clip.track" in text
    assert "1/1/4" in text
    lines = text.strip().splitlines()
    assert lines[-1].startswith("checked 17 row(s), 17 image(s) decoded (0 unreadable)")
    assert "groups by clip.track" in lines[-1]
    assert lines[-1].endswith(" s")


def test_group_key_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_clean_dataset(tmp_path / "d")
    assert main([str(root), "--group-by", "track_id"]) == 2
    err = capsys.readouterr().err
    assert "no row has metadata.track_id" in err
    assert str(root / "train") in err
    assert main([str(root), "--group-by", "a..b"]) == 2
    assert "dotted path" in capsys.readouterr().err
    folders = tmp_path / "f"
    for split in ("train", "valid"):
        for label in ("1", "2"):
            (folders / split / label).mkdir(parents=True)
            Image.new("RGB", (8, 8), (int(label) * 80, 0, 0)).save(
                folders / split / label / "a.png"
            )
    assert main([str(folders), "--group-by", "track_id"]) == 2
    assert "class-folder layout has none" in capsys.readouterr().err
