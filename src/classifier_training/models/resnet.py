"""ResNet18/34/50 classifiers built on torchvision, registered as Hydra configs."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn
from torchvision import models as tv_models

from classifier_training.models.base import BaseClassificationModel
from classifier_training.utils.hydra import register


class WeightsError(RuntimeError):
    """Weights could not be obtained or do not fit the architecture."""


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept torchvision state dicts and our Lightning checkpoints alike."""
    for prefix in ("network.", "model.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix) :]: v for k, v in state.items()}
    if any(k.startswith("network.") for k in state):
        return {
            k[len("network.") :]: v
            for k, v in state.items()
            if k.startswith("network.")
        }
    return dict(state)


def load_backbone_weights(network: nn.Module, path: str | Path, arch: str) -> None:
    """Load a local weights file into ``network``, leaving the new head alone.

    Accepts a torchvision state dict (``resnet18-*.pth``), a plain state dict, or a
    checkpoint of this project (``state_dict`` with ``network.`` keys). Loading is
    ``weights_only`` (no arbitrary pickles). Head (``fc``) weights are used only
    when their shape matches.

    Args:
        network: The torchvision ResNet with its head already replaced.
        path: The weights file.
        arch: Architecture name, for messages.

    Raises:
        WeightsError: If the file is missing, unreadable or does not fit ``arch``.
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"model.weights_path: {file} does not exist")
    try:
        loaded: Any = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"model.weights_path: cannot read {file}: {error}") from None
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"model.weights_path: {file} holds no state dict")
    state = _strip_prefix(loaded)
    own = network.state_dict()
    head = {
        k
        for k in state
        if k.startswith("fc.") and (k not in own or state[k].shape != own[k].shape)
    }
    state = {k: v for k, v in state.items() if k not in head}
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even when not strict
        first = str(error).splitlines()[1:2]
        raise WeightsError(
            f"model.weights_path: {file} does not fit {arch}: {' '.join(first).strip()}"
        ) from None
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    unexpected = result.unexpected_keys
    if missing or unexpected:
        raise WeightsError(
            f"model.weights_path: {file} does not fit {arch}: "
            f"{len(missing)} missing key(s) (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    logger.info(f"loaded {arch} weights from {file}" + (" (new head)" if head else ""))


def build_resnet(
    arch: str,
    num_classes: int,
    pretrained: bool,
    weights_path: str | None,
) -> nn.Module:
    """Build a torchvision ResNet with a ``num_classes`` head.

    Args:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        num_classes: Output classes.
        pretrained: Download torchvision's ImageNet weights (``DEFAULT``).
        weights_path: Local weights file; used instead of downloading when given.

    Returns:
        The network.

    Raises:
        WeightsError: If pretrained weights cannot be downloaded or loaded; the
            message says how to proceed. Never falls back to random weights.
    """
    factory: Callable[..., nn.Module] = getattr(tv_models, arch)
    weights_enum = tv_models.get_model_weights(arch)
    weights = weights_enum.DEFAULT if pretrained and weights_path is None else None
    try:
        network = factory(weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        file_name = Path(weights.url).name if weights is not None else "?"
        raise WeightsError(
            f"could not download ImageNet weights for {arch} ({error}). Either put "
            f"{file_name} in $TORCH_HOME/hub/checkpoints (default "
            f"~/.cache/torch/hub/checkpoints), or set model.weights_path=/path/to/"
            f"{file_name}, or train from scratch with model.pretrained=false."
        ) from None
    head = network.fc
    assert isinstance(head, nn.Linear)
    network.fc = nn.Linear(head.in_features, num_classes)
    if weights_path is not None:
        load_backbone_weights(network, weights_path, arch)
    return network


class _ResNetClassificationModel(BaseClassificationModel):
    arch = "resnet18"

    def build_network(
        self, num_classes: int, pretrained: bool, weights_path: str | None
    ) -> nn.Module:
        return build_resnet(self.arch, num_classes, pretrained, weights_path)


_DOC = """{arch} image classifier (torchvision backbone, new ``num_classes`` head).

    Args: see :class:`~classifier_training.models.base.BaseClassificationModel`.
    """


@register(group="model", name="resnet18")
class ResNet18ClassificationModel(_ResNetClassificationModel):
    __doc__ = _DOC.format(arch="ResNet18")
    arch = "resnet18"


@register(group="model", name="resnet34")
class ResNet34ClassificationModel(_ResNetClassificationModel):
    __doc__ = _DOC.format(arch="ResNet34")
    arch = "resnet34"


@register(group="model", name="resnet50")
class ResNet50ClassificationModel(_ResNetClassificationModel):
    __doc__ = _DOC.format(arch="ResNet50")
    arch = "resnet50"
