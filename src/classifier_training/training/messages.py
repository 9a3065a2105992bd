"""What a training run prints: the project's messages in Hydra's log files, and
third-party messages that say nothing about the user's run left out."""

from __future__ import annotations

import logging
import warnings
from typing import Any

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
    """Drop Lightning's advertising tips (e.g. for its cloud logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:")


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
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        _DropLightningTips()
    )
