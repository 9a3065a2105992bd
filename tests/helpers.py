"""Builders of tiny, real datasets for tests (both layouts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import lightning as L

CLASS_COLORS = [
    (220, 30, 30), (30, 200, 40), (30, 60, 220), (230, 210, 20),
    (200, 40, 200), (20, 200, 210), (250, 140, 0), (120, 120, 120),
]  # fmt: skip


def class_image(class_index: int, variant: int, size: int = 24) -> Image.Image:
    """An easy-to-learn image: a class colour with a little per-variant noise."""
    rng = np.random.default_rng([class_index, variant])
    base = np.array(CLASS_COLORS[class_index % len(CLASS_COLORS)], dtype=np.int16)
    noise = rng.integers(-20, 21, size=(size, size, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def write_jsonl_split(
    split_dir: Path,
    labels: Sequence[str],
    per_class: int,
    size: int = 24,
    extra_rows: Iterable[dict[str, object]] = (),
    subdir: str = "",
) -> Path:
    """Write ``split_dir/[subdir/]images/*.png`` and an ``annotations.jsonl``."""
    folder = split_dir / subdir if subdir else split_dir
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    for class_index, label in enumerate(labels):
        for variant in range(per_class):
            name = f"images/c{class_index}_{variant}.png"
            class_image(class_index, variant, size).save(folder / name)
            rows.append(
                {
                    "image": name,
                    "prefix": "jersey number",
                    "suffix": label,
                    "metadata": {"variant": variant % 2},
                }
            )
    rows.extend(extra_rows)
    jsonl = folder / "annotations.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return jsonl


def make_jsonl_dataset(
    root: Path,
    labels: Sequence[str] = ("", "7", "23"),
    per_class: int = 6,
    eval_per_class: int = 2,
    size: int = 24,
    with_test: bool = True,
) -> Path:
    """A complete JSONL dataset: train/valid/(test) with the same classes."""
    write_jsonl_split(root / "train", labels, per_class, size)
    write_jsonl_split(root / "valid", labels, eval_per_class, size)
    if with_test:
        write_jsonl_split(root / "test", labels, eval_per_class, size)
    return root


def make_folder_dataset(
    root: Path,
    labels: Sequence[str] = ("cat", "dog", "fox"),
    per_class: int = 5,
    eval_per_class: int = 2,
    size: int = 24,
    valid_name: str = "val",
) -> Path:
    """A class-per-folder dataset: ``<split>/<class>/*.png``."""
    for split, count in (
        ("train", per_class),
        (valid_name, eval_per_class),
        ("test", eval_per_class),
    ):
        for class_index, label in enumerate(labels):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for variant in range(count):
                class_image(class_index, variant, size).save(folder / f"{variant}.png")
    return root


def run_train(
    cwd: Path,
    *overrides: str,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``classifier-train`` (demo recipe) with Hydra overrides in a subprocess.

    Args:
        cwd: Working folder of the run.
        *overrides: Hydra overrides.
        check: Raise on a non-zero exit, with the tail of stdout and stderr.
        extra_env: Environment variables added to the current ones.

    Returns:
        The finished process (text output captured).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier_training.train",
            "--config-name",
            "train_demo",
            *overrides,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"exit {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-5000:]}"
        )
    return result


def quiet_trainer(**settings: Any) -> L.Trainer:
    """A CPU Lightning trainer that writes and prints nothing unless told to.

    Args:
        **settings: ``L.Trainer`` arguments that replace or add to the quiet ones
            (no logger, checkpoints, progress bar, model summary or sanity check).
    """
    import lightning as L

    quiet: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**{**quiet, **settings})
