"""Helpers shared by the artifact callbacks: when to act, where to write, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from matplotlib.figure import Figure

from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.readers import display_name
from classifier_training.utils.io import atomic_path

# One look for every figure: small and light so that per-epoch plots stay cheap.
DPI = 100


def is_fitting(trainer: L.Trainer) -> bool:
    """Whether the trainer is fitting (not sanity-checking, validating or testing)."""
    return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking


def should_write(trainer: L.Trainer) -> bool:
    """Artifacts are written once (global rank 0) and never during the sanity check."""
    return trainer.is_global_zero and not trainer.sanity_checking


def epoch_dir(output_dir: Path, epoch: int) -> Path:
    """The per-epoch artifact folder ``epoch_XXX`` (zero-based epoch, 3 digits)."""
    return output_dir / f"epoch_{epoch:03d}"


def save_figure(figure: Figure, path: Path, dpi: int = DPI) -> Path:
    """Save ``figure`` as PNG atomically (a killed run never leaves half a file).

    Args:
        figure: The figure (created with ``matplotlib.figure.Figure``; no pyplot,
            so nothing global is touched and no GUI backend is needed).
        path: The destination ``.png``.
        dpi: Resolution.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path


def wandb_loggers(trainer: L.Trainer) -> list[Any]:
    """The active ``WandbLogger`` instances of ``trainer`` (empty when none)."""
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - wandb is a dependency
        return []
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def get_datamodule(trainer: L.Trainer, who: str) -> ImageFolderDataModule:
    """The trainer's ``ImageFolderDataModule`` (the artifact callbacks read it).

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


def class_names(pl_module: L.LightningModule) -> list[str]:
    """Display names (``<empty>`` for ``""``) of the model's classes, by index."""
    names = getattr(pl_module, "class_names", None)
    if not isinstance(names, list):
        raise RuntimeError(f"{type(pl_module).__name__} has no class_names list")
    return [display_name(str(name)) for name in names]
