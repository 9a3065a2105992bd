"""``CheckpointClassifier``: a Lightning checkpoint of this project, run with torch.

The architecture is inferred from the weights themselves (blocks per stage and
block type of the ``network.`` keys), not from a pickled class path: Lightning does
not store the model class in the checkpoint, and a shape-derived answer cannot
disagree with the weights it is about to load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torchvision import models as tv_models

from classifier_training.inference.base import (
    Classifier,
    ModelLoadError,
    find_labels_mapping,
)

NETWORK_PREFIX = "network."
# (blocks per stage, bottleneck blocks) -> torchvision factory name
RESNET_LAYOUTS: dict[tuple[tuple[int, int, int, int], bool], str] = {
    ((2, 2, 2, 2), False): "resnet18",
    ((3, 4, 6, 3), False): "resnet34",
    ((3, 4, 6, 3), True): "resnet50",
    ((3, 4, 23, 3), True): "resnet101",
    ((3, 8, 36, 3), True): "resnet152",
}
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def network_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The network's weights (``network.`` prefix removed) from a checkpoint.

    ``state_dict`` holds the weights Lightning evaluated: with weight averaging
    (EMA) these are the averaged weights; the raw ones sit in
    ``current_model_state`` and are ignored here.

    Args:
        checkpoint: The loaded checkpoint.
        path: Its file, for messages.

    Returns:
        The torchvision-keyed state dict.

    Raises:
        ModelLoadError: If the checkpoint holds no network weights.
    """
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise ModelLoadError(f"{path}: not a Lightning checkpoint (no state_dict)")
    network = {
        key[len(NETWORK_PREFIX) :]: value
        for key, value in state.items()
        if key.startswith(NETWORK_PREFIX)
    }
    if not network:
        raise ModelLoadError(f"{path}: state_dict has no 'network.' weights")
    return network


def infer_resnet_arch(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """Name the torchvision ResNet whose keys and block counts match ``state``.

    Args:
        state: Torchvision-keyed weights.
        path: The checkpoint, for messages.

    Returns:
        ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101`` or ``resnet152``.

    Raises:
        ModelLoadError: If the weights match none of them.
    """
    blocks: dict[int, set[int]] = {1: set(), 2: set(), 3: set(), 4: set()}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks[int(match.group(1))].add(int(match.group(2)))
    counts = (len(blocks[1]), len(blocks[2]), len(blocks[3]), len(blocks[4]))
    bottleneck = "layer1.0.conv3.weight" in state
    arch = RESNET_LAYOUTS.get((counts, bottleneck))
    if arch is None:
        raise ModelLoadError(
            f"{path}: weights match no known ResNet (blocks per stage {counts}, "
            f"{'bottleneck' if bottleneck else 'basic'} blocks)"
        )
    return arch


class CheckpointClassifier(Classifier):
    """Classify images with a Lightning checkpoint (``best.ckpt``, ``last.ckpt``).

    Loads with ``torch.load(weights_only=True)`` (no arbitrary pickles) and uses
    the checkpoint's ``state_dict`` weights, which are the EMA weights when the run
    averaged weights. The preprocessing comes from ``labels_mapping.json`` in the
    run folder (``<run>/checkpoints/x.ckpt`` -> ``<run>/labels_mapping.json``) or
    from ``labels_mapping_path``.

    Args:
        checkpoint_path: The checkpoint file.
        labels_mapping_path: The mapping, when it is not in the run folder.
        device: Torch device to run on.

    Raises:
        ModelLoadError: If the checkpoint or mapping is missing, unreadable, or
            they do not fit each other.
    """

    def __init__(
        self,
        checkpoint_path: str | Path,
        labels_mapping_path: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        if not self.checkpoint_path.is_file():
            raise ModelLoadError(f"{self.checkpoint_path}: checkpoint file not found")
        mapping_path = find_labels_mapping(self.checkpoint_path, labels_mapping_path)
        super().__init__(self._read_mapping(mapping_path), mapping_path)
        try:
            checkpoint = torch.load(
                self.checkpoint_path, map_location="cpu", weights_only=True
            )
        except Exception as error:  # unpickling errors have many types
            raise ModelLoadError(
                f"{self.checkpoint_path}: cannot load checkpoint safely ({error})"
            ) from None
        if not isinstance(checkpoint, Mapping):
            raise ModelLoadError(f"{self.checkpoint_path}: not a Lightning checkpoint")
        self._check_class_names(checkpoint)
        state = network_state(checkpoint, self.checkpoint_path)
        self.arch = infer_resnet_arch(state, self.checkpoint_path)
        self.device = torch.device(device)
        self.network = self._build(state).to(self.device).eval()

    def _check_class_names(self, checkpoint: Mapping[str, Any]) -> None:
        hparams = checkpoint.get("hyper_parameters") or {}
        names = hparams.get("class_names")
        if names is not None and list(names) != self.class_names:
            raise ModelLoadError(
                f"{self.checkpoint_path}: class names {list(names)[:5]}... differ "
                f"from {self.mapping_path} {self.class_names[:5]}...; the mapping "
                "belongs to another run"
            )

    def _build(self, state: dict[str, torch.Tensor]) -> nn.Module:
        fc = state.get("fc.weight")
        if fc is None or fc.shape[0] != self.num_classes:
            found = None if fc is None else fc.shape[0]
            raise ModelLoadError(
                f"{self.checkpoint_path}: head has {found} outputs but "
                f"{self.mapping_path} lists {self.num_classes} classes"
            )
        network: nn.Module = getattr(tv_models, self.arch)(
            weights=None, num_classes=self.num_classes
        )
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(
                f"{self.checkpoint_path}: weights do not fit {self.arch}: "
                f"{str(error).splitlines()[0]}"
            ) from None
        return network

    @torch.inference_mode()
    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the network (eval mode) on a preprocessed float32 batch."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        logits = self.network(tensor.to(self.device))
        return np.asarray(logits.float().cpu().numpy())
