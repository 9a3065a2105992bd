"""Networks by name: any torchvision classification model, or ``timm/<name>``.

Like torchvision's ``get_model`` and timm's ``create_model``, a new architecture is
a name, not a class: :func:`build_network` returns the network with its head
replaced for ``num_classes``, and :func:`default_normalization` the mean/std its
pretrained weights were trained with.
"""

from __future__ import annotations

import importlib.util
import urllib.error
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn
from torchvision import models as tv_models

from classifier_training.core.errors import ClassifierError
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD

TIMM_PREFIX = "timm/"


class WeightsError(ClassifierError):
    """Weights could not be obtained or do not fit the architecture."""


class UnknownArchitectureError(ClassifierError):
    """``arch`` names no torchvision classification model (or timm model)."""


def _timm_name(arch: str) -> str | None:
    return arch[len(TIMM_PREFIX) :] if arch.startswith(TIMM_PREFIX) else None


def _require_timm(arch: str) -> Any:
    if importlib.util.find_spec("timm") is None:
        raise UnknownArchitectureError(
            f"model.arch={arch} needs timm: pip install 'classifier-training[timm]'"
        )
    import timm

    return timm


def available_architectures() -> list[str]:
    """torchvision's classification model names (``timm/<name>`` also accepted)."""
    return sorted(tv_models.list_models(module=tv_models))


def check_architecture(arch: str) -> None:
    """Raise :class:`UnknownArchitectureError` unless ``arch`` can be built."""
    timm_name = _timm_name(arch)
    if timm_name is not None:
        timm = _require_timm(arch)
        if not timm.is_model(timm_name):
            raise UnknownArchitectureError(
                f"model.arch: timm has no model {timm_name!r}"
            )
        return
    if arch not in available_architectures():
        raise UnknownArchitectureError(
            f"model.arch: {arch!r} is not a torchvision classification model "
            "(e.g. resnet18, efficientnet_b0, mobilenet_v3_large, convnext_tiny; "
            "timm models as timm/<name>)"
        )


def network_name(model_config: Mapping[str, Any]) -> str:
    """The name a run records for its network (the contract's ``arch``).

    ``model.arch`` for models whose network is chosen by name; for a model class
    that builds a network of its own (no ``arch`` setting), the class
    (``model._target_``).

    Args:
        model_config: The ``model`` config node.

    Returns:
        The name.
    """
    arch = model_config.get("arch")
    return str(arch if arch is not None else model_config["_target_"])


def default_normalization(arch: str | None) -> tuple[list[float], list[float]]:
    """Mean and std the architecture's pretrained weights expect.

    Args:
        arch: A torchvision model name or ``timm/<name>``; ``None`` for a model
            that builds a network of its own (no ``model.arch``).

    Returns:
        ``(mean, std)``, ImageNet's when the weights (or their absence) say
        nothing else.
    """
    mean: Any = IMAGENET_MEAN
    std: Any = IMAGENET_STD
    if arch is None:
        return list(mean), list(std)
    check_architecture(arch)
    timm_name = _timm_name(arch)
    if timm_name is not None:
        cfg = _require_timm(arch).models.get_pretrained_cfg(timm_name)
        if cfg is not None:
            mean, std = cfg.mean, cfg.std
    else:
        weights = tv_models.get_model_weights(arch).DEFAULT
        preset = weights.transforms() if weights is not None else None
        mean = getattr(preset, "mean", mean)
        std = getattr(preset, "std", std)
    return [float(v) for v in mean], [float(v) for v in std]


def head_name(network: nn.Module) -> str:
    """Qualified name of the classification head: the network's last ``Linear``.

    Raises:
        UnknownArchitectureError: If the network has no ``Linear`` layer.
    """
    names: list[str] = [
        name for name, m in network.named_modules() if isinstance(m, nn.Linear)
    ]
    if not names:
        raise UnknownArchitectureError(
            f"{type(network).__name__} has no Linear head to replace"
        )
    return names[-1]


def _replace_head(network: nn.Module, num_classes: int) -> None:
    name = head_name(network)
    parent_name, _, child = name.rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    old = getattr(parent, child)
    assert isinstance(old, nn.Linear)
    if old.out_features != num_classes:
        setattr(parent, child, nn.Linear(old.in_features, num_classes))


def _download_error(arch: str, weights: Any, error: Exception) -> WeightsError:
    url = getattr(weights, "url", None)
    file_name = Path(url).name if url else "<weights file>"
    return WeightsError(
        f"could not download ImageNet weights for {arch} ({error}). Either put "
        f"{file_name} in $TORCH_HOME/hub/checkpoints (default "
        f"~/.cache/torch/hub/checkpoints), or set model.weights_path=/path/to/"
        f"{file_name}, or train from scratch with model.pretrained=false."
    )


def build_network(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool = False,
    weights_path: str | None = None,
) -> nn.Module:
    """Build a classification network with a ``num_classes`` head.

    Args:
        arch: A torchvision classification model name (``resnet18``,
            ``efficientnet_b0``, ``convnext_tiny``, …) or ``timm/<name>``.
        num_classes: Output classes.
        pretrained: Start from the ImageNet weights (torchvision ``DEFAULT``).
        weights_path: Local weights file; used instead of downloading when given.

    Returns:
        The network.

    Raises:
        UnknownArchitectureError: If ``arch`` names no model.
        WeightsError: If pretrained weights cannot be downloaded or loaded; the
            message says how to proceed. Never falls back to random weights.
    """
    check_architecture(arch)
    download = pretrained and weights_path is None
    timm_name = _timm_name(arch)
    weights: Any = None
    try:
        if timm_name is not None:
            network: nn.Module = _require_timm(arch).create_model(
                timm_name, pretrained=download, num_classes=num_classes
            )
        else:
            # Built with its ImageNet head, then the head replaced, whether or not
            # weights are loaded: one path, and the same random initialisation
            # (for a seed) as the pretrained layout.
            if download:
                weights = tv_models.get_model_weights(arch).DEFAULT
            network = tv_models.get_model(arch, weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        if not download:
            raise
        raise _download_error(arch, weights, error) from None
    _replace_head(network, num_classes)
    if weights_path is not None:
        load_backbone_weights(network, weights_path, arch)
    return network


def _strip_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept torchvision/timm state dicts and this project's checkpoints alike."""
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
    """Load a local weights file into ``network``, leaving a new head alone.

    Accepts a torchvision or timm state dict, or a checkpoint of this project
    (``state_dict`` with ``network.`` keys). Loading is ``weights_only``. Head
    weights are used only when their shape matches.

    Args:
        network: The network with its head already replaced.
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
    head_prefix = head_name(network) + "."
    head = {
        k
        for k in state
        if k.startswith(head_prefix)
        and (k not in own or state[k].shape != own[k].shape)
    }
    state = {k: v for k, v in state.items() if k not in head}
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches raise even when not strict
        first = str(error).splitlines()[1:2]
        raise WeightsError(
            f"model.weights_path: {file} does not fit {arch}: {' '.join(first).strip()}"
        ) from None
    missing = [k for k in result.missing_keys if not k.startswith(head_prefix)]
    unexpected = result.unexpected_keys
    if missing or unexpected:
        raise WeightsError(
            f"model.weights_path: {file} does not fit {arch}: "
            f"{len(missing)} missing key(s) (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    logger.info(f"loaded {arch} weights from {file}" + (" (new head)" if head else ""))
