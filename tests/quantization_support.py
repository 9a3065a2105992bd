"""A small CNN trained in seconds on colour images: a model with real accuracy
whose int8 copy must answer like it (the tiny Lightning run of
``inference_support`` is trained too briefly to tell a broken quantization from a
good one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from classifier_training.core.contract import DeploymentContract, write_labels_mapping
from classifier_training.core.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessor,
)
from classifier_training.core.readers import read_split
from classifier_training.core.run_files import MODEL_ONNX
from classifier_training.export import export_onnx
from tests.helpers import CLASS_COLORS, make_jsonl_dataset

LABELS = tuple(str(i) for i in range(len(CLASS_COLORS)))
IMAGE_SIZE = 32


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: every layer kind a quantizer touches."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits


def colour_contract() -> DeploymentContract:
    """The contract of :class:`SmallCNN` on the colour classes."""
    return DeploymentContract(
        arch="small_cnn",
        class_names=LABELS,
        image_size=IMAGE_SIZE,
        resize_mode="squash",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def build_colour_deployment(base: Path, steps: int = 60) -> tuple[Path, Path]:
    """Train :class:`SmallCNN` on a colour dataset, export it as the project does.

    Returns:
        The data root (train/valid/test) and ``model.onnx`` (its
        ``labels_mapping.json`` beside it).
    """
    root = make_jsonl_dataset(
        base / "data", labels=LABELS, per_class=12, eval_per_class=8, size=24
    )
    contract = colour_contract()
    preprocessor = Preprocessor.from_contract(contract)
    samples = read_split(root / "train")
    images = torch.from_numpy(preprocessor.batch([s.image for s in samples]))
    targets = torch.tensor([contract.class_to_idx[s.label] for s in samples])
    torch.manual_seed(0)
    network = SmallCNN(len(LABELS))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    network.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(network(images), targets)
        loss.backward()
        optimizer.step()
    network.eval()
    folder = base / "deploy"
    folder.mkdir()
    write_labels_mapping(contract, folder)
    export_onnx(network, contract, folder / MODEL_ONNX, verify_images=images[:8])
    with torch.no_grad():
        accuracy = float((network(images).argmax(1) == targets).float().mean())
    assert accuracy == 1.0, f"the colour CNN did not learn its train set: {accuracy}"
    assert np.isfinite(loss.item())
    return root, folder / MODEL_ONNX
