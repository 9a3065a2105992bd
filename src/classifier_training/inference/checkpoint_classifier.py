"""``CheckpointClassifier``: a Lightning checkpoint of this project, run with torch.

Loading is :func:`classifier_training.checkpoints.load_checkpoint` (shared with
``classifier-export``): ``weights_only=True``, the evaluated (EMA) weights, the
network and contract the checkpoint carries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from classifier_training.checkpoints import load_checkpoint
from classifier_training.core.errors import ClassifierError
from classifier_training.inference.base import Classifier, ModelLoadError


class CheckpointClassifier(Classifier):
    """Classify images with a Lightning checkpoint (``best.ckpt``, ``last.ckpt``).

    The checkpoint carries its own deployment contract (classes, preprocessing,
    architecture), so a copied ``best.ckpt`` works alone.

    Args:
        checkpoint_path: The checkpoint file.
        device: Torch device to run on.

    Raises:
        ModelLoadError: If the file is missing, not a checkpoint, or too old (one
            line naming the file).
    """

    def __init__(
        self, checkpoint_path: str | Path, device: str | torch.device = "cpu"
    ) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        try:
            loaded = load_checkpoint(self.checkpoint_path)
        except ClassifierError as error:
            raise ModelLoadError(str(error)) from None
        super().__init__(loaded.contract, self.checkpoint_path)
        self.device = torch.device(device)
        self.network = loaded.network.to(self.device)

    @torch.inference_mode()
    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the network (eval mode) on a preprocessed float32 batch."""
        tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        logits = self.network(tensor.to(self.device))
        return np.asarray(logits.float().cpu().numpy())
