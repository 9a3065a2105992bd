"""Training history: loss, accuracy and learning-rate curves, refreshed per epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure

from classifier_training.callbacks._common import is_fitting, save_figure, should_write
from classifier_training.utils.io import atomic_write_json, atomic_write_text

LR_POINTS_PER_EPOCH = 50

# Logged metric -> (plot, legend label). Missing metrics are simply not drawn.
CURVES: dict[str, tuple[str, str]] = {
    "train/loss": ("loss", "train"),
    "val/loss": ("loss", "val"),
    "train/acc_top1": ("accuracy", "train top-1"),
    "train/acc_top5": ("accuracy", "train top-5"),
    "val/acc_top1": ("accuracy", "val top-1"),
    "val/acc_top5": ("accuracy", "val top-5"),
}


def _scalar(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


class TrainingHistoryCallback(Callback):
    """Keep per-epoch metrics and redraw the curves after every training epoch.

    Writes into ``output_dir`` (``RUN/training_history``): ``loss.png`` (train and
    val loss), ``accuracy.png`` (top-1/top-5, train and val, whichever are
    logged), ``learning_rate.png`` (within epochs too, x axis in epochs),
    ``history.json`` and ``history.csv``. The history is saved in checkpoints, so
    a resumed run continues its curves.

    Args:
        output_dir: The ``training_history`` folder.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.epochs: list[dict[str, float]] = []
        self.lr_steps: list[tuple[float, float]] = []  # (epoch position, lr)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Record the learning rate (about 50 points per epoch at most)."""
        if not trainer.optimizers or not is_fitting(trainer):
            return
        total = trainer.num_training_batches
        batches = int(total) if math.isfinite(total) and total > 0 else 0
        stride = max(1, batches // LR_POINTS_PER_EPOCH)
        if batch_idx % stride and batch_idx + 1 != batches:
            return
        lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        position = trainer.current_epoch + (batch_idx + 1) / max(batches, batch_idx + 1)
        self.lr_steps.append((position, lr))

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Append this epoch's train and validation metrics and redraw."""
        if not is_fitting(trainer):
            return
        row: dict[str, float] = {"epoch": float(trainer.current_epoch)}
        for key in CURVES:  # not every logged metric: one .item() (sync) each
            scalar = _scalar(trainer.callback_metrics.get(key))
            if scalar is not None:
                row[key] = scalar
        if self.lr_steps:
            row["lr"] = self.lr_steps[-1][1]
        self.epochs = [r for r in self.epochs if r["epoch"] != row["epoch"]] + [row]
        if should_write(trainer):
            self.write()

    def write(self) -> None:
        """Write the JSON/CSV history and the three plots."""
        atomic_write_json(
            self.output_dir / "history.json",
            {"epochs": self.epochs, "lr_steps": self.lr_steps},
        )
        columns = ["epoch", *[k for k in CURVES if any(k in r for r in self.epochs)]]
        columns += ["lr"] if any("lr" in r for r in self.epochs) else []
        lines = [",".join(columns)] + [
            ",".join(f"{r[c]:.6g}" if c in r else "" for c in columns)
            for r in self.epochs
        ]
        atomic_write_text(self.output_dir / "history.csv", "\n".join(lines) + "\n")
        for name, ylabel in (("loss", "loss"), ("accuracy", "accuracy")):
            self._plot_metric(name, ylabel)
        self._plot_lr()

    def _plot_metric(self, plot: str, ylabel: str) -> None:
        figure = Figure(figsize=(6, 4))
        ax = figure.add_subplot()
        drawn = False
        for key, (target, label) in CURVES.items():
            points = [(r["epoch"], r[key]) for r in self.epochs if key in r]
            if target != plot or not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
            drawn = True
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if plot == "accuracy":
            ax.set_ylim(0, 1.0)
        if drawn:
            ax.legend(fontsize=8)
        ax.set_title(f"{ylabel} per epoch")
        figure.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
        save_figure(figure, self.output_dir / f"{plot}.png")

    def _plot_lr(self) -> None:
        figure = Figure(figsize=(6, 4))
        ax = figure.add_subplot()
        if self.lr_steps:
            xs, ys = zip(*self.lr_steps, strict=True)
            ax.plot(xs, ys)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.set_title("learning rate")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        figure.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.12)
        save_figure(figure, self.output_dir / "learning_rate.png")

    def state_dict(self) -> dict[str, Any]:
        """The history so far (saved in checkpoints)."""
        return {"epochs": self.epochs, "lr_steps": self.lr_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the history of a resumed run."""
        self.epochs = [dict(r) for r in state_dict.get("epochs", [])]
        self.lr_steps = [
            (float(x), float(y)) for x, y in state_dict.get("lr_steps", [])
        ]
