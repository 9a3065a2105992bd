"""``CheckpointClassifier``: a Lightning checkpoint of this project, run with torch.

Loading is :mod:`classifier_training.checkpoints`' (shared with
``classifier-export``): ``weights_only=True``, the evaluated (EMA) weights, the
model class stored in the checkpoint or the architecture whose weights fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from classifier_training.checkpoints import (
    load_checkpoint_model,
    resolve_labels_mapping,
)
from classifier_training.inference.base import Classifier, ModelLoadError


class CheckpointClassifier(Classifier):
    """Classify images with a Lightning checkpoint (``best.ckpt``, ``last.ckpt``).

    Loads with ``torch.load(weights_only=True)`` (no arbitrary pickles) and uses
    the checkpoint's ``state_dict`` weights, which are the EMA weights when the run
    averaged weights. The preprocessing comes from ``labels_mapping_path`` when
    given, else from the mapping stored in the checkpoint, else from
    ``labels_mapping.json`` in the run folder (``<run>/checkpoints/x.ckpt`` ->
    ``<run>/labels_mapping.json``).

    Args:
        checkpoint_path: The checkpoint file.
        labels_mapping_path: The mapping, overriding the one found.
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
        explicit = None if labels_mapping_path is None else Path(labels_mapping_path)
        try:
            loaded = load_checkpoint_model(self.checkpoint_path)
            mapping, source = resolve_labels_mapping(
                self.checkpoint_path, loaded, explicit
            )
        except ValueError as error:  # CheckpointError, or a malformed mapping file
            raise ModelLoadError(str(error)) from None
        super().__init__(mapping, Path(source))
        self.model_class = loaded.model_class
        self.device = torch.device(device)
        self.network = loaded.network.to(self.device)

    @torch.inference_mode()
    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the network (eval mode) on a preprocessed float32 batch."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        logits = self.network(tensor.to(self.device))
        return np.asarray(logits.float().cpu().numpy())
