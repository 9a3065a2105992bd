"""Fixtures shared by the inference tests: a tiny trained run and its ONNX export.

``export_onnx`` is the one place to swap in the project's exporter
(``classifier_training.export``) once it exists. This module holds no tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from classifier_training.config import DataModuleConfig
from classifier_training.labels_mapping import write_labels_mapping
from tests.helpers import class_image, make_jsonl_dataset

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32


def export_onnx(network: nn.Module, image_size: int, path: Path) -> Path:
    """Export ``network`` as the project's exporter does (input/logits, dynamic N)."""
    x = torch.randn(2, 3, image_size, image_size)
    program = torch.onnx.export(
        network.eval(),
        (x,),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        external_data=False,
    )
    assert program is not None
    program.save(str(path))
    return path


@dataclass(frozen=True)
class TrainedRun:
    """A finished tiny training run with its exported model."""

    data_root: Path
    run_dir: Path
    checkpoint: Path
    onnx: Path
    metrics: dict[str, object]


def train_tiny_run(data_root: Path, run_dir: Path) -> None:
    """Two epochs of the demo recipe on a tiny dataset (CPU, ~10 s)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "classifier_training.train",
            "--config-name",
            "train_demo",
            f"data.data_root={data_root}",
            f"data.image_size={IMAGE_SIZE}",
            "data.num_workers=0",
            "trainer.max_epochs=2",
            f"hydra.run.dir={run_dir}",
            "~callbacks.rich_progress_bar",
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}"},
    )


# Each test module imports the fixtures, which makes separate fixture definitions;
# this cache keeps them to one build per session all the same.
_BUILT: dict[str, object] = {}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Train once per session, export ``best.ckpt`` to ``<run>/model.onnx``."""
    if "trained_run" not in _BUILT:
        _BUILT["trained_run"] = _build_trained_run(tmp_path_factory)
    run = _BUILT["trained_run"]
    assert isinstance(run, TrainedRun)
    return run


def _build_trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    from classifier_training.inference.checkpoint_classifier import (
        CheckpointClassifier,
    )

    base = tmp_path_factory.mktemp("trained")
    data_root = make_jsonl_dataset(base / "data", per_class=6, eval_per_class=4)
    run_dir = base / "run"
    train_tiny_run(data_root, run_dir)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    network = CheckpointClassifier(checkpoint).network
    onnx = export_onnx(network, IMAGE_SIZE, run_dir / "model.onnx")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return TrainedRun(data_root, run_dir, checkpoint, onnx, metrics)


class ChannelArgmax(nn.Module):
    """A model whose answers are known: the class is the brightest channel.

    Logits are ``10 x`` the mean normalised value of each channel, with channels
    ordered to the classes ``blue`` (0), ``green`` (1), ``red`` (2).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        return 10.0 * means.flip(1)  # RGB -> B, G, R = class order


COLOR_CLASSES = ("blue", "green", "red")
# Colour index in tests.helpers.CLASS_COLORS for each class name.
COLOR_INDEX = {"red": 0, "green": 1, "blue": 2}


@pytest.fixture(scope="session")
def color_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.onnx`` + ``labels_mapping.json`` of :class:`ChannelArgmax`."""
    if "color_model" not in _BUILT:
        _BUILT["color_model"] = _build_color_model(tmp_path_factory)
    path = _BUILT["color_model"]
    assert isinstance(path, Path)
    return path


def _build_color_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("color_model")
    config = DataModuleConfig(data_root=folder, image_size=IMAGE_SIZE)
    write_labels_mapping(
        folder, {name: i for i, name in enumerate(COLOR_CLASSES)}, config
    )
    return export_onnx(ChannelArgmax(), IMAGE_SIZE, folder / "model.onnx")


def write_color_image(path: Path, color: str, variant: int) -> Path:
    """Save a noisy image of one of the red/green/blue test colours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    class_image(COLOR_INDEX[color], variant, size=20).save(path)
    return path
