"""Export the best checkpoint's (EMA) weights to a verified ``model.onnx``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from loguru import logger

from classifier_training.callbacks._common import get_datamodule
from classifier_training.checkpoints import (
    CHECKPOINT_CLASS_KEY,
    CHECKPOINT_MAPPING_KEY,
    model_class_path,
)
from classifier_training.export import (
    VERIFY_BATCH,
    OnnxVerificationError,
    write_deployment,
)
from classifier_training.labels_mapping import build_labels_mapping


def best_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """The best checkpoint of the first ``ModelCheckpoint`` that monitors a metric."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            path = callback.best_model_path
            return Path(path) if path and Path(path).is_file() else None
    return None


def validation_images(
    datamodule: Any, count: int = VERIFY_BATCH
) -> torch.Tensor | None:
    """The first ``count`` validation images, preprocessed as in evaluation."""
    dataset = getattr(datamodule, "datasets", {}).get("valid")
    if dataset is None or len(dataset) == 0:
        return None
    return torch.stack([dataset[i]["images"] for i in range(min(count, len(dataset)))])


class ONNXExportCallback(Callback):
    """At the end of fit, write ``model.onnx`` + ``labels_mapping.json``.

    The weights are those of the best checkpoint (its ``state_dict``: the EMA
    weights when :class:`~classifier_training.callbacks.ema.EMACallback` is on, i.e.
    the weights that were scored); without a best checkpoint the final weights are
    used. The export is checked with onnxruntime against PyTorch on real
    validation images (batch 1 and batch 8) before it is kept; a failed check
    raises :class:`~classifier_training.export.OnnxVerificationError` and leaves no
    ``model.onnx`` (the checkpoints stay; retry with ``classifier-export``).

    Every checkpoint saved while this callback is active also carries the labels
    mapping (``checkpoint["labels_mapping"]``) and the model class
    (``checkpoint["model_class"]``), so ``classifier-export`` needs nothing else.

    Args:
        output_dir: Folder receiving ``model.onnx`` and ``labels_mapping.json``.
        atol: Largest allowed absolute logit difference in the check.
    """

    def __init__(self, output_dir: str | Path, atol: float = 1e-4) -> None:
        self.output_dir = Path(output_dir)
        self.atol = atol
        self.onnx_path: Path | None = None

    def on_save_checkpoint(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        checkpoint: dict[str, Any],
    ) -> None:
        """Store the labels mapping and the model class in the checkpoint."""
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "class_to_idx", None):
            checkpoint[CHECKPOINT_MAPPING_KEY] = build_labels_mapping(
                datamodule.class_to_idx, datamodule.config
            )
        checkpoint[CHECKPOINT_CLASS_KEY] = model_class_path(pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Export and verify the best weights."""
        if not trainer.is_global_zero:
            return
        datamodule = get_datamodule(trainer, type(self).__name__)
        network = pl_module.network
        assert isinstance(network, torch.nn.Module)
        best = best_checkpoint_path(trainer)
        if best is not None:
            network = _network_from_checkpoint(network, best)
        else:
            logger.warning("no best checkpoint: exporting the final (EMA) weights")
        try:
            result = write_deployment(
                network,
                self.output_dir,
                datamodule.class_to_idx,
                datamodule.config,
                verify_images=validation_images(datamodule),
                atol=self.atol,
            )
        except OnnxVerificationError as error:
            raise OnnxVerificationError(
                f"{error}. No model.onnx was written; the checkpoints are kept "
                "(export them with `classifier-export`)"
            ) from None
        self.onnx_path = self.output_dir / "model.onnx"
        logger.info(
            f"wrote {self.onnx_path} from {best or 'final weights'} (onnxruntime "
            f"check passed: max |logit diff| {result.max_abs_diff:.1e})"
        )


def _network_from_checkpoint(network: torch.nn.Module, path: Path) -> torch.nn.Module:
    """A copy of ``network`` holding the ``network.*`` weights of ``path``."""

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "network."
    state = {
        key[len(prefix) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
    restored = copy.deepcopy(network).cpu()
    restored.load_state_dict(state, strict=True)
    return restored
