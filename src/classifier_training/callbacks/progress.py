"""The training progress bar, one line at 80 columns.

Lightning's bar lists every logged metric by its full name (``train/acc_top1``,
``v_num``) after a 40-column bar and a speed column: at 80 columns the metrics
wrap into a column of their own. This one shows the three numbers that tell
whether a run learns (loss, accuracy, validation accuracy), abbreviated, and
narrows the bar to the terminal.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import (
    BatchesProcessedColumn,
    CustomBarColumn,
    CustomTimeColumn,
)
from rich.progress import TextColumn

#: Logged metric -> its label on the bar (``%``: shown as a percentage).
SHOWN_METRICS = {
    "train/loss": ("loss", ""),
    "train/acc_top1": ("acc", "%"),
    "val/acc_top1": ("val acc", "%"),
}
# Columns the bar's neighbours take (description, counts, times, metrics).
_OTHER_COLUMNS = 72


def short_metrics(values: dict[str, Any]) -> dict[str, str]:
    """The shown metrics, abbreviated: ``{"loss": "4.61", "acc": "2.1%"}``."""
    shown = {}
    for name, (label, unit) in SHOWN_METRICS.items():
        value = values.get(name)
        if value is None:
            continue
        number = float(value)
        shown[label] = f"{100 * number:.1f}%" if unit == "%" else f"{number:.3g}"
    return shown


class CompactProgressBar(RichProgressBar):
    """``RichProgressBar`` that fits an 80-column terminal (see the module)."""

    def get_metrics(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        """The abbreviated metrics (no ``v_num``)."""
        return dict(short_metrics(dict(trainer.progress_bar_metrics)))

    def configure_columns(self, trainer: L.Trainer) -> list[Any]:
        """Description, a bar as wide as the terminal leaves, counts and times."""
        width = self._console.width if self._console is not None else 80
        return [
            TextColumn("[progress.description]{task.description}"),
            CustomBarColumn(
                bar_width=max(8, min(40, width - _OTHER_COLUMNS)),
                complete_style=self.theme.progress_bar,
                finished_style=self.theme.progress_bar_finished,
                pulse_style=self.theme.progress_bar_pulse,
            ),
            BatchesProcessedColumn(style=self.theme.batch_progress),
            CustomTimeColumn(style=self.theme.time),
        ]
