"""Helpers shared by the artifact callbacks: when to act, what data, which loggers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from classifier_training.core.readers import display_name
from classifier_training.core.run_files import epoch_folder
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.types import TrainingData


def is_fitting(trainer: L.Trainer) -> bool:
    """Whether the trainer is fitting (not sanity-checking, validating or testing)."""
    return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking


def should_write(trainer: L.Trainer) -> bool:
    """Artifacts are written once (global rank 0) and never during the sanity check."""
    return trainer.is_global_zero and not trainer.sanity_checking


def epoch_dir(output_dir: Path, epoch: int) -> Path:
    """The per-epoch artifact folder ``epoch_XXX`` (zero-based epoch, 3 digits)."""
    return output_dir / epoch_folder(epoch)


def best_checkpoint_callback(callbacks: list[Any]) -> ModelCheckpoint | None:
    """The first ``ModelCheckpoint`` that monitors a metric: it keeps the best weights.

    ``train.py`` (which requires one) and the ONNX export (which exports its best
    checkpoint) both ask here.
    """
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            return callback
    return None


def training_data(trainer: L.Trainer, who: str) -> TrainingData:
    """The trainer's data module, as the :class:`TrainingData` the callbacks read.

    Raises:
        RuntimeError: Naming the callback, when fit was given no such data module.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, TrainingData):
        raise RuntimeError(
            f"{who} needs a data module with a deployment contract (e.g. "
            f"ImageFolderDataModule), got {type(datamodule).__name__}"
        )
    return datamodule


def get_datamodule(trainer: L.Trainer, who: str) -> ImageFolderDataModule:
    """The trainer's ``ImageFolderDataModule`` (for the sampler monitor, which reads
    the concrete sampler).

    Raises:
        RuntimeError: Naming the callback, when fit was not given one.
    """
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, ImageFolderDataModule):
        raise RuntimeError(
            f"{who} needs trainer.fit(..., datamodule=ImageFolderDataModule(...)), "
            f"got {type(datamodule).__name__}"
        )
    return datamodule


def display_names(data: TrainingData) -> list[str]:
    """Display names (``<empty>`` for ``""``) of the run's classes, by index."""
    return [display_name(name) for name in data.contract.class_names]


def class_names(pl_module: L.LightningModule) -> list[str]:
    """Display names (``<empty>`` for ``""``) of the model's classes, by index."""
    names = getattr(pl_module, "class_names", None)
    if not isinstance(names, list):
        raise RuntimeError(f"{type(pl_module).__name__} has no class_names list")
    return [display_name(str(name)) for name in names]
