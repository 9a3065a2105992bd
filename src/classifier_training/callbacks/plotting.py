"""Training history: loss, accuracy and learning-rate curves, redrawn per epoch.

The curves are drawn from what the CSV logger already records (``metrics.csv``),
not from a second history kept by this callback: a resumed run's curves are
whatever its ``metrics.csv`` holds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from loguru import logger

from classifier_training.callbacks._common import is_fitting, should_write
from classifier_training.core.run_files import HISTORY_PLOTS
from classifier_training.plots import (
    plot_learning_rate,
    plot_metric_curves,
    save_figure,
)
from classifier_training.plots.history import CURVES

LR_PREFIX = "lr-"  # LearningRateMonitor's column names: lr-AdamW, lr-SGD, ...


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def read_history(
    rows: Iterable[Mapping[str, str]],
) -> tuple[list[dict[str, float]], list[tuple[float, float]]]:
    """Per-epoch metrics and learning-rate points from ``metrics.csv`` rows.

    Args:
        rows: The CSV rows (``csv.DictReader``): ``epoch``, ``step`` and a
            column per logged metric, empty where a row lacks it.

    Returns:
        One dict per trained epoch (``epoch`` and the :data:`CURVES` metrics
        logged in it, the last value winning) in epoch order, and
        ``(optimizer step, lr)`` points of the first learning-rate column.
    """
    epochs: dict[float, dict[str, float]] = {}
    lr_points: list[tuple[float, float]] = []
    lr_column: str | None = None
    for row in rows:
        # LearningRateMonitor logs its own rows, with a step but no epoch.
        if lr_column is None:
            lr_column = next((k for k in row if k.startswith(LR_PREFIX)), None)
        lr = _number(row.get(lr_column)) if lr_column else None
        step = _number(row.get("step"))
        if lr is not None and step is not None:
            lr_points.append((step, lr))
        epoch = _number(row.get("epoch"))
        if epoch is None:
            continue
        record = epochs.setdefault(epoch, {"epoch": epoch})
        for key in CURVES:
            value = _number(row.get(key))
            if value is not None:
                record[key] = value
    # Rows of trainer.validate()/test() after fit carry the next epoch number but
    # no training metric: they are evaluations, not epochs.
    trained = [
        epochs[e]
        for e in sorted(epochs)
        if any(k.startswith("train/") for k in epochs[e])
    ]
    return trained, lr_points


class TrainingHistoryCallback(Callback):
    """Redraw the training curves from the CSV logger's ``metrics.csv``.

    Writes into ``output_dir`` (``RUN/training_history``): ``loss.png`` (train and
    val loss), ``accuracy.png`` (top-1/top-5, train and val, whichever are
    logged) and ``learning_rate.png`` (what ``LearningRateMonitor`` logs). The
    curves are refreshed at the start of every epoch (when the previous epoch's
    metrics are all logged) and at the end of fit. Without a ``CSVLogger``
    (``logging=none``, W&B only) there is nothing to draw from; that is said once.

    Args:
        output_dir: The ``training_history`` folder.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self._told_no_csv = False

    def on_train_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Draw the epochs finished so far."""
        if is_fitting(trainer) and trainer.current_epoch > 0:
            self.draw(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the whole run."""
        self.draw(trainer)

    def draw(self, trainer: L.Trainer) -> None:
        """Flush the CSV logger and draw the three plots from its file."""
        if not should_write(trainer):
            return
        csv_logger = next(
            (lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None
        )
        if csv_logger is None:
            if not self._told_no_csv:
                logger.info("training history plots need the CSV logger: skipped")
                self._told_no_csv = True
            return
        csv_logger.save()
        path = Path(csv_logger.experiment.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="", encoding="utf-8") as handle:
            epochs, lr_points = read_history(csv.DictReader(handle))
        loss, accuracy, learning_rate = HISTORY_PLOTS
        for plot in (loss, accuracy):
            figure = plot_metric_curves(epochs, plot, plot)
            save_figure(figure, self.output_dir / f"{plot}.png")
        save_figure(
            plot_learning_rate(lr_points), self.output_dir / f"{learning_rate}.png"
        )
