"""The run's deployment: ``labels_mapping.json`` at fit start, ``model.onnx`` at end."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger

from classifier_training.callbacks._common import (
    best_checkpoint_callback,
    should_write,
    training_data,
)
from classifier_training.checkpoints import load_network_weights
from classifier_training.core.contract import write_labels_mapping
from classifier_training.core.run_files import LABELS_MAPPING_FILE, MODEL_ONNX
from classifier_training.export import VERIFY_BATCH, OnnxVerificationError, export_onnx


def best_checkpoint_path(trainer: L.Trainer) -> Path | None:
    """The file of the best checkpoint so far (``None`` when none was saved)."""
    callback = best_checkpoint_callback(trainer.checkpoint_callbacks)
    path = callback.best_model_path if callback is not None else ""
    return Path(path) if path and Path(path).is_file() else None


class ONNXExportCallback(Callback):
    """Write the run's deployment into ``output_dir``.

    At fit start, ``labels_mapping.json`` (the data module's deployment contract,
    through :func:`~classifier_training.core.contract.write_labels_mapping`, the
    only writer). At the end of fit, ``model.onnx`` with the weights of the best
    checkpoint (its ``state_dict``: the EMA weights when
    :class:`~classifier_training.callbacks.ema.EMACallback` is on, i.e. the
    weights that were scored); without a best checkpoint the final weights are
    used. The export is checked with onnxruntime against PyTorch on real
    validation images (batch 1 and batch 8) before it is kept; a failed check
    raises :class:`~classifier_training.export.OnnxVerificationError` and leaves no
    ``model.onnx`` (the checkpoints, which carry the contract, stay; retry with
    ``classifier-export``).

    Args:
        output_dir: Folder receiving ``model.onnx`` and ``labels_mapping.json``.
        atol: Largest allowed absolute logit difference in the check.
    """

    def __init__(self, output_dir: str | Path, atol: float = 1e-4) -> None:
        self.output_dir = Path(output_dir)
        self.atol = atol
        self.onnx_path: Path | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write ``labels_mapping.json`` (once per run)."""
        if should_write(trainer):
            contract = training_data(trainer, type(self).__name__).contract
            write_labels_mapping(contract, self.output_dir / LABELS_MAPPING_FILE)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Export and verify the best weights."""
        if not trainer.is_global_zero:
            return
        data = training_data(trainer, type(self).__name__)
        network = pl_module.network
        assert isinstance(network, torch.nn.Module)
        best = best_checkpoint_path(trainer)
        if best is not None:
            network = load_network_weights(copy.deepcopy(network).cpu(), best)
        else:
            logger.warning("no best checkpoint: exporting the final (EMA) weights")
        onnx_path = self.output_dir / MODEL_ONNX
        try:
            result = export_onnx(
                network,
                data.contract,
                onnx_path,
                verify_images=data.eval_images("val", VERIFY_BATCH),
                atol=self.atol,
            )
        except OnnxVerificationError as error:
            raise OnnxVerificationError(
                f"{error}. No model.onnx was written; the checkpoints are kept "
                "(export them with `classifier-export`)"
            ) from None
        self.onnx_path = onnx_path
        logger.info(
            f"wrote {onnx_path} from {best or 'final weights'} (onnxruntime "
            f"check passed: max |logit diff| {result.max_abs_diff:.1e})"
        )
