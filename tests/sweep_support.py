"""Hand-made run folders: the files a training run writes, with chosen numbers."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

SRC = Path(__file__).resolve().parents[1] / "src"
CHECKPOINT = {
    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
    "monitor": "val/acc_top1",
    "mode": "max",
}


def base_config(**changes: Any) -> dict[str, Any]:
    """A small composed config; ``changes`` are dotted keys set on it."""
    config: dict[str, Any] = {
        "seed": 0,
        "optimizer": {"lr": 0.001, "weight_decay": 0.01},
        "data": {"image_size": 32, "mean": [0.5, 0.5, 0.5]},
        "callbacks": {"model_checkpoint": dict(CHECKPOINT)},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def per_class(scores: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``metrics.json``'s per-class entry from top-1 (recall) per class."""
    return {
        name: {"precision": recall, "recall": recall, "f1": recall, "support": 10}
        for name, recall in scores.items()
    }


def write_run(
    folder: Path,
    *,
    overrides: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    val_top1: float | None = 0.8,
    test_top1: float | None = None,
    classes: Mapping[str, float] | None = None,
    curve: Sequence[float] = (0.5, 0.8, 0.7),
    confusions: Mapping[tuple[str, str], int] | None = None,
) -> Path:
    """Write a run folder as ``classifier-train`` would.

    Args:
        folder: The run folder.
        overrides: Its ``.hydra/overrides.yaml`` lines.
        config: Its ``.hydra/config.yaml`` (default :func:`base_config`).
        val_top1: Final val top-1; ``None`` writes no ``metrics.json`` (a run
            that did not finish).
        test_top1: Final test top-1 (default: ``val_top1``).
        classes: Test top-1 per class.
        curve: ``val/acc_top1`` per epoch in ``metrics.csv``.
        confusions: Off-diagonal test counts ``(true, predicted) -> rows`` for
            ``eval/confusion_matrix_test.json``.

    Returns:
        ``folder``.
    """
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True, exist_ok=True)
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    (hydra / "config.yaml").write_text(yaml.safe_dump(dict(config or base_config())))
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "train/loss", "val/acc_top1"])
        for epoch, value in enumerate(curve):
            writer.writerow([epoch, epoch * 2 + 1, 1.0 / (epoch + 1), ""])
            writer.writerow([epoch, epoch * 2 + 1, "", value])
    if val_top1 is None:
        return folder
    test = val_top1 if test_top1 is None else test_top1
    scores = dict(classes or {"7": test, "23": test})
    metrics = {
        "val": {"acc_top1": val_top1, "acc_top5": 1.0, "per_class": per_class(scores)},
        "test": {"acc_top1": test, "acc_top5": 1.0, "per_class": per_class(scores)},
        "calibration": {
            "temperature": 1.2,
            "val": {"ece_after": 0.02},
            "test": {"ece_after": 0.03},
        },
        "epochs_completed": len(curve),
        "wall_time_s": 12.5,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    names = sorted(scores)
    matrix = [[10 if t == p else 0 for p in names] for t in names]
    for (true, predicted), count in (confusions or {}).items():
        matrix[names.index(true)][names.index(predicted)] = count
    (folder / "eval").mkdir(exist_ok=True)
    (folder / "eval" / "confusion_matrix_test.json").write_text(
        json.dumps({"class_names": names, "matrix": matrix})
    )
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def subprocess_env() -> dict[str, str]:
    """The environment of a command under test: this checkout's ``src`` first
    (absolute, so that a subprocess started in another folder imports it too)."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
