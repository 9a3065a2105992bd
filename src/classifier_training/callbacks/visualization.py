"""Per-epoch grid of validation predictions: a fixed set plus the worst mistakes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
from lightning.pytorch.callbacks import Callback

from classifier_training.callbacks._common import (
    class_names,
    epoch_dir,
    is_fitting,
    should_write,
    training_data,
)
from classifier_training.core.run_files import SAMPLE_PREDICTIONS_FILE
from classifier_training.plots import GridTile, render_grid, save_image
from classifier_training.utils.loggers import log_image


def choose_fixed_indices(targets: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` validation indices spread over the classes (deterministic).

    Classes are taken evenly spaced over the class indices (all classes when
    there are fewer than ``count``), first images first, then second images...

    Args:
        targets: Class index of every validation row.
        count: How many to pick.

    Returns:
        Sorted indices.
    """
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_class[int(target)].append(index)
    classes = sorted(by_class)
    if len(classes) > count > 0:
        spots = np.linspace(0, len(classes) - 1, count).round().astype(int)
        classes = [classes[i] for i in sorted(set(spots.tolist()))]
    picked: list[int] = []
    rank = 0
    while len(picked) < count and any(len(by_class[c]) > rank for c in classes):
        for c in classes:
            if len(by_class[c]) > rank and len(picked) < count:
                picked.append(by_class[c][rank])
        rank += 1
    return sorted(picked)


def _to_uint8(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> npt.NDArray[np.uint8]:
    """Undo the normalisation: ``N x 3 x H x W`` floats to ``N x H x W x 3`` bytes."""
    pixels = images.detach().float().cpu() * std + mean
    return (
        (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    )


class SamplePredictionsCallback(Callback):
    """Write ``epoch_XXX/sample_predictions.png`` after every validation epoch.

    Shows the same ``num_fixed`` validation images every epoch (spread over the
    classes, so progress is visible) and the ``num_mistakes`` most confident
    mistakes of that epoch, each with true label, predicted label and confidence.
    Uses the predictions the validation loop returns (no extra forward pass);
    images are drawn with PIL, which keeps the cost to milliseconds. The grid is
    also sent to the TensorBoard and W&B loggers when active.

    Args:
        output_dir: The run folder.
        num_fixed: Fixed images shown every epoch.
        num_mistakes: Most confident mistakes shown.
        tile: Tile side in pixels.
        columns: Tiles per row.
    """

    def __init__(
        self,
        output_dir: str | Path,
        num_fixed: int = 16,
        num_mistakes: int = 8,
        tile: int = 96,
        columns: int = 8,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.num_fixed = num_fixed
        self.num_mistakes = num_mistakes
        self.tile = tile
        self.columns = columns
        self._fixed_indices: set[int] | None = None
        self._fixed: list[GridTile] = []
        self._mistakes: list[GridTile] = []
        self._seen = 0
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def _active(self, trainer: L.Trainer) -> bool:
        return is_fitting(trainer) and trainer.is_global_zero

    def on_validation_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Reset this epoch's collection."""
        if not self._active(trainer):
            return  # keep the last fit epoch's selection (e.g. after validate())
        self._fixed, self._mistakes, self._seen = [], [], 0
        if self._fixed_indices is not None:
            return
        data = training_data(trainer, type(self).__name__)
        class_to_idx = data.contract.class_to_idx
        targets = [class_to_idx[s.label] for s in data.split_samples("val")]
        self._fixed_indices = set(choose_fixed_indices(targets, self.num_fixed))
        contract = data.contract
        self._norm = (
            torch.tensor(contract.mean).view(1, 3, 1, 1),
            torch.tensor(contract.std).view(1, 3, 1, 1),
        )

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the fixed images and the most confident mistakes so far."""
        if not self._active(trainer) or not isinstance(outputs, dict):
            return
        assert self._fixed_indices is not None
        assert self._norm is not None
        labels = outputs["labels"].detach().cpu()
        preds = outputs["preds"].detach().cpu()
        confidence = outputs["confidence"].detach().float().cpu()
        start, count = self._seen, len(labels)
        self._seen += count
        keep = [i for i in range(count) if start + i in self._fixed_indices]
        wrong = torch.nonzero(preds != labels).flatten()
        if len(wrong) > self.num_mistakes:
            wrong = wrong[
                confidence[wrong].argsort(descending=True)[: self.num_mistakes]
            ]
        floor = (
            self._mistakes[-1].confidence
            if len(self._mistakes) >= self.num_mistakes
            else -1.0
        )
        wrong_list = [int(i) for i in wrong if float(confidence[i]) > floor]
        if not keep and not wrong_list:
            return
        rows = sorted(set(keep) | set(wrong_list))
        pixels = _to_uint8(batch["images"][rows], *self._norm)
        for row, image in zip(rows, pixels, strict=True):
            prediction = GridTile(
                index=start + row,
                image=image,
                label=int(labels[row]),
                pred=int(preds[row]),
                confidence=float(confidence[row]),
            )
            if row in keep:
                self._fixed.append(prediction)
            if row in wrong_list:
                self._mistakes.append(prediction)
        self._mistakes.sort(key=lambda p: -p.confidence)
        del self._mistakes[self.num_mistakes :]

    def on_validation_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Draw and write the grid."""
        if not (self._active(trainer) and should_write(trainer)) or not (
            self._fixed or self._mistakes
        ):
            return
        names = class_names(pl_module)
        correct = sum(p.pred == p.label for p in self._fixed)
        grid = render_grid(
            [
                (f"fixed images ({correct}/{len(self._fixed)} correct)", self._fixed),
                ("most confident mistakes", self._mistakes),
            ],
            names,
            f"validation predictions, epoch {trainer.current_epoch}",
            tile=self.tile,
            columns=self.columns,
        )
        path = (
            epoch_dir(self.output_dir, trainer.current_epoch) / SAMPLE_PREDICTIONS_FILE
        )
        save_image(grid, path)
        log_image(trainer.loggers, "val/sample_predictions", path, trainer.global_step)
