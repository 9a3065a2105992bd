"""Start-up validation: every bad-input case, all problems reported at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.config import DataModuleConfig
from classifier_training.core.readers import DataError, read_split
from classifier_training.core.validation import validate_dataset
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.dataset import JerseyNumberDataset
from tests.helpers import make_folder_dataset, make_jsonl_dataset
from tests.test_image_io import write_png_header


def add_rows(split_dir: Path, *lines: str) -> Path:
    """Append raw lines to a split's annotations; return the file."""
    jsonl = split_dir / "annotations.jsonl"
    with jsonl.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return jsonl


def n_lines(jsonl: Path) -> int:
    return len(jsonl.read_text(encoding="utf-8").splitlines())


def row(image: str, label: object = "7") -> str:
    return json.dumps({"image": image, "suffix": label})


def setup_error(root: Path, **overrides: object) -> str:
    config = DataModuleConfig(data_root=root, image_size=16, **overrides)  # type: ignore[arg-type]
    with pytest.raises(DataError) as info:
        ImageFolderDataModule(config, arch="resnet18").setup()
    return str(info.value)


def noisy_jpeg(path: Path, size: int = 48) -> Path:
    pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        (json.dumps({"suffix": "7"}), "missing required key 'image'"),
        (json.dumps({"image": "images/c0_0.png"}), "missing required key 'suffix'"),
        (row("images/c0_0.png", 7), "label 'suffix' must be a string"),
        (row("images/c0_0.png", None), "label 'suffix' must be a string"),
    ],
)
def test_annotation_problems_name_file_and_line(
    jsonl_root: Path, line: str, message: str
) -> None:
    jsonl = add_rows(jsonl_root / "train", line)
    text = setup_error(jsonl_root)
    assert f"{jsonl}:{n_lines(jsonl)}: {message}" in text


def make_bad_images(images: Path) -> dict[str, str]:
    """Write one file per image problem; map its name to the expected message."""
    (images / "empty.png").write_bytes(b"")
    (images / "notes.png").write_text("this is not an image", encoding="utf-8")
    noisy_jpeg(images / "cut.jpg")
    data = (images / "cut.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(data[: len(data) // 2])
    good_png = (images / "c0_0.png").read_bytes()
    # Cut in the middle of the pixel data (IDAT): header intact, stream ends early.
    idat = good_png.index(b"IDAT")
    idat_length = int.from_bytes(good_png[idat - 4 : idat], "big")
    (images / "cut.png").write_bytes(good_png[: idat + 4 + idat_length // 2])
    (images / "corrupt.png").write_bytes(good_png[:33] + b"\x00" * 200)
    write_png_header(images / "bomb.png", 50_000, 50_000)
    # Each message as reported, up to where the decoder's own wording starts.
    return {
        "missing.png": "image file not found",
        "empty.png": "empty image file (0 bytes)",
        "notes.png": "not an image (unrecognised file format)",
        "cut.jpg": "truncated image (image file is truncated",
        "cut.png": "truncated image (image file is truncated)",
        "corrupt.png": "corrupt image (header cannot be parsed)",
        "bomb.png": "possible decompression bomb (",
    }


def test_every_image_problem_is_reported_with_its_line(jsonl_root: Path) -> None:
    train = jsonl_root / "train"
    expected = make_bad_images(train / "images")
    jsonl = train / "annotations.jsonl"
    first = n_lines(jsonl) + 1
    add_rows(train, *(row(f"images/{name}") for name in expected))
    text = setup_error(jsonl_root)
    assert text.startswith(f"{len(expected)} problems in {jsonl_root}:")
    lines = text.splitlines()[1:]
    assert len(lines) == len(expected)
    for offset, (name, message) in enumerate(expected.items()):
        where = f"{jsonl}:{first + offset}: {train / 'images' / name}: "
        (line,) = [line for line in lines if line.startswith(where)]
        assert line.removeprefix(where).startswith(message), line


def test_paths_escaping_the_split_are_refused_never_read(jsonl_root: Path) -> None:
    outside = jsonl_root / "secret.png"
    outside.write_bytes(b"")  # reading it would report 'empty', not 'escapes'
    jsonl = add_rows(
        jsonl_root / "train", row("../secret.png"), row(str(outside.resolve()))
    )
    text = setup_error(jsonl_root)
    last = n_lines(jsonl)
    assert f"{jsonl}:{last - 1}: image path '../secret.png' escapes the split" in text
    assert f"{jsonl}:{last}: image path '{outside.resolve()}' is absolute" in text
    assert "empty" not in text


def test_all_problems_at_once_and_bad_rows_skipped_when_collecting(
    jsonl_root: Path,
) -> None:
    jsonl = add_rows(jsonl_root / "train", "{", row("images/nope.png"), row("x", 3))
    report = validate_dataset(jsonl_root)
    assert len(report.errors) == 3
    assert [p.where for p in report.errors] == [
        f"{jsonl}:19",
        f"{jsonl}:21",
        f"{jsonl}:20",
    ]
    # Other callers keep the raising behaviour.
    with pytest.raises(DataError, match=f"{jsonl}:19: not valid JSON"):
        read_split(jsonl_root / "train")


def test_blank_lines_count_in_the_reported_line_numbers(jsonl_root: Path) -> None:
    train = jsonl_root / "train"
    jsonl = train / "annotations.jsonl"
    rows = jsonl.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 18
    # Physical lines: 1 blank, 2-19 rows, 20 blank, 21 spaces, 22 bad JSON,
    # 23 blank, 24 a row whose image is missing.
    jsonl.write_text(
        "\n" + "\n".join(rows) + "\n\n  \n{oops\n\n" + row("images/nope.png") + "\n",
        encoding="utf-8",
    )
    report = validate_dataset(jsonl_root)
    assert [str(p) for p in report.errors] == [
        f"{jsonl}:22: not valid JSON (Expecting property name enclosed in double "
        "quotes)",
        f"{jsonl}:24: {train / 'images' / 'nope.png'}: image file not found",
    ]
    text = setup_error(jsonl_root)
    assert f"\n{jsonl}:22: not valid JSON" in text
    assert f"\n{jsonl}:24: {train / 'images' / 'nope.png'}: image file" in text


def test_folder_layout_problem_names_the_image(folder_root: Path) -> None:
    bad = folder_root / "train" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    text = setup_error(folder_root)
    assert text.startswith(f"{bad}: ")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_train", "no train/ split folder"),
        ("empty_train", "train split has no samples"),
        ("no_valid", "no valid/ (or val/) split folder"),
        ("empty_valid", "validation split has no samples"),
        ("no_root", "data root folder does not exist"),
    ],
)
def test_split_problems(tmp_path: Path, case: str, message: str) -> None:
    root = make_jsonl_dataset(tmp_path / "d", with_test=False)
    if case == "no_train":
        os.rename(root / "train", root / "training")
    elif case == "empty_train":
        (root / "train" / "annotations.jsonl").write_text("\n", encoding="utf-8")
    elif case == "no_valid":
        os.rename(root / "valid", root / "validation")
    elif case == "empty_valid":
        (root / "valid" / "annotations.jsonl").write_text("", encoding="utf-8")
    else:
        root = tmp_path / "missing"
    assert message in setup_error(root)


def test_duplicate_rows_are_warnings_not_errors(jsonl_root: Path) -> None:
    jsonl = add_rows(
        jsonl_root / "train", row("images/c1_0.png", "7"), row("images/c1_1.png", "23")
    )
    report = validate_dataset(jsonl_root)
    assert report.errors == []
    texts = [str(w) for w in report.warnings]
    assert any(
        t.startswith(f"{jsonl}:19: warning: duplicate row") and f"{jsonl}:7" in t
        for t in texts
    )
    assert any(t.startswith(f"{jsonl}:20: warning: image c1_1.png") for t in texts)
    dm = ImageFolderDataModule(
        DataModuleConfig(data_root=jsonl_root, image_size=16), arch="resnet18"
    )
    dm.setup()
    assert len(dm.datasets["train"]) == 20


def test_skip_leaves_out_unreadable_images_and_counts_them(jsonl_root: Path) -> None:
    images = jsonl_root / "train" / "images"
    (images / "c1_0.png").write_bytes(b"")
    (images / "c2_0.png").write_text("not an image", encoding="utf-8")
    config = DataModuleConfig(data_root=jsonl_root, image_size=16, on_bad_image="skip")
    dm = ImageFolderDataModule(config, arch="resnet18")
    dm.setup()
    assert len(dm.datasets["train"]) == 16
    skipped = dm.summary()["skipped_images"]
    assert skipped == {
        "policy": "skip",
        "total": 2,
        "at_startup": {"train": 2},
        "at_load": {},
    }
    # Annotation errors are never skipped.
    add_rows(jsonl_root / "train", "{")
    assert "not valid JSON" in setup_error(jsonl_root, on_bad_image="skip")


def test_image_failing_at_load_time(jsonl_root: Path) -> None:
    dm = ImageFolderDataModule(
        DataModuleConfig(data_root=jsonl_root, image_size=16), arch="resnet18"
    )
    dm.setup()
    train = dm.datasets["train"]
    broken = train.samples[3]
    broken.image.write_bytes(b"broken after start-up")
    with pytest.raises(DataError, match=f"{broken.where}: cannot load image"):
        train[3]
    skipping = JerseyNumberDataset(
        train.samples, train.class_to_idx, train.transform, train.loader, "skip"
    )
    item = skipping[3]
    assert item["labels"] == train.targets[4]  # replaced by the next row
    skipping[3]  # the same row again: still one skipped row, not two
    assert skipping.skipped_count == 1


def test_transform_errors_are_not_taken_for_bad_images(jsonl_root: Path) -> None:
    dm = ImageFolderDataModule(
        DataModuleConfig(data_root=jsonl_root, image_size=16), arch="resnet18"
    )
    dm.setup()
    train = dm.datasets["train"]

    def broken_transform(image: object) -> object:
        raise RuntimeError("bug in an augmentation")

    skipping = JerseyNumberDataset(
        train.samples, train.class_to_idx, broken_transform, train.loader, "skip"
    )
    with pytest.raises(RuntimeError, match="bug in an augmentation"):
        skipping[0]
    assert skipping.skipped_count == 0


@pytest.mark.slow
def test_train_cli_reports_problems_and_saves_skip_count(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", per_class=4, with_test=False)
    (root / "train" / "images" / "c1_0.png").write_bytes(b"")
    jsonl = add_rows(root / "train", "{oops")
    base = [
        sys.executable,
        "-m",
        "classifier_training.train",
        "--config-name",
        "train_demo",
        f"data.data_root={root}",
        "data.image_size=16",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "~callbacks.rich_progress_bar",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    failed = subprocess.run(
        [*base, f"hydra.run.dir={tmp_path / 'run1'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert failed.returncode == 2
    assert f"{jsonl}:13: not valid JSON" in failed.stderr
    assert "empty image file" in failed.stderr
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    jsonl.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    ok = subprocess.run(
        [
            *[a for a in base if "rich" not in a],
            "data.on_bad_image=skip",
            "callbacks=none",  # the skip count is the point, not the artifacts
            f"hydra.run.dir={tmp_path / 'run2'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    metrics = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert metrics["skipped_images"]["total"] == 1
    assert metrics["skipped_images"]["at_startup"] == {"train": 1}


def test_folder_dataset_clean(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "f")
    assert validate_dataset(root).problems == []
