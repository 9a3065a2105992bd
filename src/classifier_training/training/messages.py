"""What a training run prints: the project's messages in Hydra's log files, and
third-party messages that say nothing about the user's run left out."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger


def forward_loguru_to_logging() -> None:
    """Send loguru records through stdlib logging, so Hydra's handlers (console and
    the run folder's ``train.log``) receive the project's warnings too."""

    def sink(message: Any) -> None:
        record = message.record
        logging.getLogger(record["name"]).log(record["level"].no, record["message"])

    logger.remove()
    logger.add(sink, level="INFO", format="{message}")


class _DropLightningTips(logging.Filter):
    """Drop Lightning's advertising tips (e.g. for its cloud logger), its device
    lines where there is no GPU, its note on estimating the step count, and its
    checkpoint lines but the first per file (validation and test of the best
    checkpoint each restore it)."""

    _RESTORE = "Restoring states from the checkpoint path at "

    def __init__(self) -> None:
        super().__init__()
        starts = ["\N{ELECTRIC LIGHT BULB} Tip:", "Loading `train_dataloader` to"]
        starts.append("Loaded model weights from the checkpoint")
        if not torch.cuda.is_available():
            starts += ["GPU available:", "TPU available:", "HPU available:"]
        self.starts = tuple(starts)
        self.restored: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self._RESTORE):
            seen = message in self.restored
            self.restored.add(message)
            return not seen
        return not message.startswith(self.starts)


class _DropCudaHome(logging.Filter):
    """torch's compiler looks for CUDA on every machine and says it found none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No CUDA runtime is found" not in record.getMessage()


class LogIntervalFromEpoch(Callback):
    """``trainer.log_every_n_steps`` at most one epoch, so a short epoch (a small
    dataset) still logs its training metrics (Lightning only warns)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Shorten the interval to the epoch's batches when the epoch is shorter."""
        batches = trainer.num_training_batches
        interval = int(getattr(trainer, "log_every_n_steps", 0))
        if isinstance(batches, int) and 0 < batches < interval:
            # A plain attribute Lightning sets in its logger connector.
            trainer.log_every_n_steps = batches  # type: ignore[attr-defined]


def silence_known_noise() -> None:
    """Hide third-party messages that say nothing about the user's run."""
    # Lightning 2.6 calls a pytree API that torch 2.14 deprecates; harmless.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Under DDP the val/test numbers are computed by torchmetrics, which already
    # synchronises them across ranks: Lightning's advice to add sync_dist would
    # only average equal values again.
    warnings.filterwarnings(
        "ignore", message=r"It is recommended to use `self\.log\('(val|test)/"
    )
    # The run folder always holds Hydra's .hydra/; the CSV writer's only file
    # there, metrics.csv, is the one the run starts (training.resume).
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    # Set from the epoch's length instead (LogIntervalFromEpoch).
    warnings.filterwarnings(
        "ignore", message=r"The number of training batches \(\d+\) is smaller than"
    )
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        _DropLightningTips()
    )
    logging.getLogger("torch.utils.cpp_extension").addFilter(_DropCudaHome())
