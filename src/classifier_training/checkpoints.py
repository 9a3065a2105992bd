"""Rebuilding a trained network from a checkpoint of this project, safely and alone.

Why not ``LightningModule.load_from_checkpoint(..., weights_only=True)``: it needs
the training class and every constructor argument (loss weights, optimizer
recipe, metrics), and builds all of it, to get at a network. What export and
inference need is the network and its :class:`DeploymentContract`, both of which
the checkpoint holds on its own: the contract in the data module's state (see
:meth:`~classifier_training.data.datamodule.ImageFolderDataModule.state_dict`),
the weights under ``state_dict["network.*"]``. So this module loads with
``torch.load(weights_only=True)`` (no arbitrary pickles), builds the network with
:func:`~classifier_training.models.factory.build_network` from ``contract.arch``
and loads those weights: the EMA weights when the run averaged weights (the
ones Lightning evaluated; the raw ones sit in ``current_model_state`` and are
ignored). Bad files become one-line :class:`CheckpointError` messages.

Checkpoints written before the contract existed carry a format-1 mapping and
the model class (when the ONNX callback was on); they still load. Older ones
say so.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    DeploymentContract,
    LabelsMappingError,
    parse_contract,
)
from classifier_training.core.errors import ClassifierError
from classifier_training.models.factory import UnknownArchitectureError, build_network

NETWORK_PREFIX = "network."
#: Checkpoints of format 1 (before the contract) stored these two entries.
LEGACY_MAPPING_KEY = "labels_mapping"
LEGACY_CLASS_KEY = "model_class"
LEGACY_ARCHS = {
    "classifier_training.models.resnet.ResNet18ClassificationModel": "resnet18",
    "classifier_training.models.resnet.ResNet34ClassificationModel": "resnet34",
    "classifier_training.models.resnet.ResNet50ClassificationModel": "resnet50",
}


class CheckpointError(ClassifierError):
    """A file is not a usable checkpoint of this project (message names the file)."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A network rebuilt from a checkpoint, with its deployment contract.

    Attributes:
        network: The checkpoint's evaluated (EMA) weights, in eval mode on the
            CPU, float32.
        contract: The deployment contract it was trained with.
    """

    network: nn.Module
    contract: DeploymentContract


def read_checkpoint(path: Path) -> Mapping[str, Any]:
    """Load a checkpoint file with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: If the file is missing, not a checkpoint, or holds
            objects that cannot be loaded safely.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors have many types
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{path}: not a checkpoint (not a PyTorch file)"
            ) from None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path}: not a checkpoint that loads safely with weights_only ({reason})"
        ) from None
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def checkpoint_contract(
    checkpoint: Mapping[str, Any], path: Path
) -> DeploymentContract:
    """The deployment contract stored in a loaded checkpoint.

    Lightning stores the data module's state under the data module's class
    name; the entry holding :data:`CHECKPOINT_STATE_KEY` is the one.

    Raises:
        CheckpointError: If the checkpoint carries none (too old) or a broken one.
    """
    try:
        for value in checkpoint.values():
            if isinstance(value, Mapping) and CHECKPOINT_STATE_KEY in value:
                return parse_contract(value[CHECKPOINT_STATE_KEY], str(path))
        legacy = checkpoint.get(LEGACY_MAPPING_KEY)
        arch = LEGACY_ARCHS.get(str(checkpoint.get(LEGACY_CLASS_KEY)))
        if legacy is not None and arch is not None:
            contract = parse_contract(legacy, str(path))
            return contract.model_copy(update={"arch": arch})
    except LabelsMappingError as error:
        raise CheckpointError(str(error)) from None
    raise CheckpointError(
        f"{path}: checkpoint too old: it records neither its classes nor its "
        "architecture (written before the deployment contract, without the "
        "onnx_export callback); export it with the version that trained it"
    )


def network_state(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The network's weights (``network.*`` of ``state_dict``, prefix removed)."""
    return {
        key[len(NETWORK_PREFIX) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(NETWORK_PREFIX)
    }


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Rebuild the network of a checkpoint and read its contract.

    Args:
        path: A ``.ckpt`` file written by ``classifier-train``.

    Returns:
        The network (evaluated weights, eval mode, CPU, float32) and contract.

    Raises:
        CheckpointError: If the file is missing, not a checkpoint, too old, or
            its weights do not fit its architecture.
    """
    checkpoint = read_checkpoint(path)
    contract = checkpoint_contract(checkpoint, path)
    assert contract.arch is not None  # contracts of checkpoints always name it
    try:
        network = build_network(contract.arch, contract.num_classes, pretrained=False)
    except UnknownArchitectureError:
        raise CheckpointError(
            f"{path}: its network {contract.arch!r} is not an architecture name "
            "(a model class built it), so the checkpoint alone cannot rebuild it; "
            "deploy the run's model.onnx"
        ) from None
    try:
        network.load_state_dict(network_state(checkpoint), strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit {contract.arch} with "
            f"{contract.num_classes} classes ({first})"
        ) from None
    return LoadedCheckpoint(
        network=network.to(device="cpu", dtype=torch.float32).eval(),
        contract=contract,
    )


def load_network_weights(network: nn.Module, path: Path) -> nn.Module:
    """Load a checkpoint's network weights into ``network`` (same architecture).

    Used by the ONNX export at the end of fit, where the network already exists.

    Args:
        network: A network of the checkpoint's architecture.
        path: The checkpoint.

    Returns:
        ``network``, holding the checkpoint's weights.

    Raises:
        CheckpointError: If the file is not a checkpoint or the weights do not fit.
    """
    state = network_state(read_checkpoint(path))
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit the network ({str(error).splitlines()[0]})"
        ) from None
    return network
