"""Training history: loss, accuracy and learning-rate curves, redrawn per epoch.

The curves are drawn from what the CSV logger already records (``metrics.csv``),
not from a second history kept by this callback: a resumed run's curves are
whatever its ``metrics.csv`` holds.
"""

from __future__ import annotations

import csv
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

# Re-exported: the reader moved to the torch-free plots package (sweep summaries
# and the compare page read the same history).
from classifier_training.plots.history import read_history

__all__ = ["TrainingHistoryCallback", "read_history"]


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
