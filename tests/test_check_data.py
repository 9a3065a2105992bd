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
