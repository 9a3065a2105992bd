"""Builders for the inference tests' session fixtures (see ``conftest.py``).

A tiny real training run (its ``onnx_export`` callback writes ``model.onnx``) and
a model whose answers are known, exported with the project's own exporter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classifier_training.core.contract import DeploymentContract, write_labels_mapping
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.export import export_onnx
from classifier_training.synthetic import SynthConfig, generate_dataset
from tests.helpers import class_image, make_jsonl_dataset, run_train

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 32


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
    run_train(
        REPO,
        f"data.data_root={data_root}",
        f"data.image_size={IMAGE_SIZE}",
        "data.num_workers=0",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
        "~callbacks.rich_progress_bar",
        extra_env={"PYTHONPATH": str(REPO / "src")},
    )


def build_trained_run(base: Path) -> TrainedRun:
    """Train a tiny run; its ``onnx_export`` callback writes ``<run>/model.onnx``."""
    data_root = make_jsonl_dataset(base / "data", per_class=6, eval_per_class=4)
    run_dir = base / "run"
    train_tiny_run(data_root, run_dir)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    onnx = run_dir / "model.onnx"
    assert onnx.is_file(), "the onnx_export callback did not write model.onnx"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return TrainedRun(data_root, run_dir, checkpoint, onnx, metrics)


def calibrated_copy(run: TrainedRun, folder: Path, temperature: float) -> TrainedRun:
    """The run's checkpoint, model and mapping copied with a chosen temperature.

    The tiny run is at chance, so its calibration is degenerate and stores 1.0;
    tests of how a temperature is applied use this copy instead.
    """
    from classifier_training.training.postfit import store_temperature_in_checkpoint

    (folder / "checkpoints").mkdir(parents=True)
    checkpoint = folder / "checkpoints" / "best.ckpt"
    shutil.copy(run.checkpoint, checkpoint)
    store_temperature_in_checkpoint(checkpoint, temperature)
    onnx = folder / "model.onnx"
    shutil.copy(run.onnx, onnx)
    mapping = json.loads((run.run_dir / "labels_mapping.json").read_text())
    mapping["temperature"] = temperature
    (folder / "labels_mapping.json").write_text(json.dumps(mapping))
    return TrainedRun(run.data_root, folder, checkpoint, onnx, run.metrics)


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


def build_color_model(folder: Path) -> Path:
    """``model.onnx`` + ``labels_mapping.json`` of :class:`ChannelArgmax`."""
    contract = color_contract()
    write_labels_mapping(contract, folder)
    path = folder / "model.onnx"
    export_onnx(ChannelArgmax(), contract, path)
    return path


def color_contract() -> DeploymentContract:
    """The contract of :class:`ChannelArgmax` (no torchvision architecture)."""
    return DeploymentContract(
        arch="channel_argmax",
        class_names=COLOR_CLASSES,
        image_size=IMAGE_SIZE,
        resize_mode="squash",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def write_color_image(path: Path, color: str, variant: int) -> Path:
    """Save a noisy image of one of the red/green/blue test colours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    class_image(COLOR_INDEX[color], variant, size=20).save(path)
    return path


HEAVY_MODULES = ("torch", "torchvision", "lightning", "torchmetrics")


def run_main_without_heavy_imports(
    module: str, argv: list[str]
) -> tuple[int, list[str], str]:
    """Run ``module.main(argv)`` in a fresh interpreter.

    Returns:
        The exit code, which of :data:`HEAVY_MODULES` ended up imported, and stdout.
    """
    script = (
        "import sys, json\n"
        f"from {module} import main\n"
        f"code = main({argv!r})\n"
        f"heavy = sorted(set({list(HEAVY_MODULES)!r}) & set(sys.modules))\n"
        "print(json.dumps([code, heavy]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, cwd=REPO, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    code, heavy = json.loads(result.stdout.splitlines()[-1])
    return int(code), list(heavy), result.stdout


@dataclass(frozen=True)
class LearnedDemo:
    """A demo run that has learned its task, with ``model.int8.onnx`` written at
    the end of training (``export.precisions=[fp32,int8]``)."""

    data_root: Path
    run_dir: Path
    metrics: dict[str, Any]


#: The learned demo's classes: the ten digits of the synthetic jerseys.
LEARNED_CLASSES = tuple(str(digit) for digit in range(10))


def build_learned_demo(base: Path) -> LearnedDemo:
    """Train the demo recipe on ten synthetic jersey classes until it has learned
    them (ResNet18 from scratch, 32 px, 200 train images per class, 8 epochs)."""
    data_root = base / "data"
    generate_dataset(
        SynthConfig(
            out_dir=data_root, per_class=200, image_size=32, classes=LEARNED_CLASSES
        ),
        log=lambda _: None,
    )
    run_dir = base / "run"
    run_train(
        REPO,
        f"data.data_root={data_root}",
        f"hydra.run.dir={run_dir}",
        "data.image_size=32",
        "trainer.max_epochs=8",
        "export.precisions=[fp32,int8]",
        # The guard's default (0.5 point) is tested on the colour model; here the
        # int8 file must be kept to measure agreement, and one of the 400 val
        # rows is 0.25 point (benchmarks/README.md, Inference).
        "export.max_drop=2.0",
        # The model and its ONNX files only: the artifact callbacks draw, they do
        # not change what is learned.
        "callbacks=[model_checkpoint,ema,onnx_export]",
        extra_env={"PYTHONPATH": str(REPO / "src")},
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return LearnedDemo(data_root, run_dir, metrics)
