"""Per-epoch confusion matrix from the predictions validation already made."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger

from classifier_training.callbacks._common import (
    class_names,
    epoch_dir,
    is_fitting,
    should_write,
)
from classifier_training.core.io import atomic_write_json
from classifier_training.core.run_files import (
    CONFUSION_JSON,
    CONFUSION_PNG,
    eval_dir,
)
from classifier_training.plots import plot_confusion_matrix, save_figure, top_confusions
from classifier_training.utils.loggers import log_image


class ConfusionMatrixCallback(Callback):
    """Write the validation confusion matrix after every validation epoch.

    Reads ``pl_module.last_confusion["val"]``, which the model fills from the
    predictions of its own validation loop (no second forward pass). Writes
    ``epoch_XXX/confusion_matrix.png`` (counts and row-normalised, real class
    names) and ``epoch_XXX/confusion_matrix.json`` (matrix and top confusions).
    Outside fit (``trainer.validate``/``trainer.test`` on the best checkpoint) the
    files go to ``eval/{val,test}/confusion_matrix.*``. The PNG is also sent to
    the TensorBoard and W&B loggers when active.

    Args:
        output_dir: The run folder.
        every_n_epochs: Draw every N epochs (the last epoch is always drawn).
    """

    def __init__(self, output_dir: str | Path, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.output_dir = Path(output_dir)
        self.every_n_epochs = every_n_epochs

    def _due(self, trainer: L.Trainer) -> bool:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        return last or epoch % self.every_n_epochs == 0

    def on_validation_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Draw the epoch's (or the evaluation's) validation confusion matrix."""
        if not should_write(trainer):
            return
        if is_fitting(trainer):
            if self._due(trainer):
                folder = epoch_dir(self.output_dir, trainer.current_epoch)
                self._write(
                    trainer, pl_module, "val", folder, CONFUSION_PNG, CONFUSION_JSON
                )
        else:
            self._write_eval(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the test confusion matrix."""
        if should_write(trainer):
            self._write_eval(trainer, pl_module, "test")

    def _write_eval(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str
    ) -> None:
        folder = self.output_dir / eval_dir(stage)
        self._write(trainer, pl_module, stage, folder, CONFUSION_PNG, CONFUSION_JSON)

    def _write(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        stage: str,
        folder: Path,
        png_name: str,
        json_name: str,
    ) -> None:
        confusion = getattr(pl_module, "last_confusion", {}).get(stage)
        if not isinstance(confusion, torch.Tensor):
            logger.warning(f"no {stage} confusion matrix on the model; skipping plot")
            return
        matrix = confusion.cpu().numpy().astype(np.int64)
        names = class_names(pl_module)
        total = int(matrix.sum())
        accuracy = float(np.trace(matrix)) / total if total else float("nan")
        where = (
            f"epoch {trainer.current_epoch}" if is_fitting(trainer) else "evaluation"
        )
        title = (
            f"{stage} confusion matrix, {where}: {total} images, top-1 {accuracy:.2%}"
        )
        figure = plot_confusion_matrix(matrix, names, title)
        png = save_figure(figure, folder / png_name)
        atomic_write_json(
            folder / json_name,
            {
                "stage": stage,
                "epoch": trainer.current_epoch,
                "class_names": names,
                "matrix": matrix.tolist(),
                "accuracy": accuracy,
                "top_confusions": top_confusions(matrix, names),
            },
        )
        log_image(
            trainer.loggers, f"{stage}/confusion_matrix", png, trainer.global_step
        )
