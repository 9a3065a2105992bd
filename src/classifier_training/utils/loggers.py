"""Loggers used from ``conf/logging``."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from loguru import logger


def wandb_has_credentials() -> bool:
    """Whether a W&B API key is configured (environment or ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that runs offline when no API key is configured.

    Args:
        mode: ``auto`` (online only with credentials), ``online``, ``offline``
            or ``disabled``.
        **kwargs: Passed to ``WandbLogger`` (project, name, save_dir, ...).

    Returns:
        The logger.
    """
    if mode == "auto":
        mode = "online" if wandb_has_credentials() else "offline"
        if mode == "offline":
            logger.info(
                "no W&B API key found: logging offline (sync later with `wandb sync`)"
            )
    Path(kwargs.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
    return WandbLogger(offline=mode == "offline", mode=mode, **kwargs)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued.

    Lightning deletes ``metrics.csv`` when the log folder is not empty (Hydra's
    ``.hydra/`` always is there), so a resumed run lost its earlier epochs.
    ``train.py`` decides what the file holds when a run starts; this writer keeps
    it and appends, widening the header when new columns appear.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), [])
            self.metrics_keys = sorted(header)

    def _check_log_dir_exists(self) -> None:
        """Keep the folder's files (Lightning would delete ``metrics.csv``)."""


class CSVLogger(LightningCSVLogger):
    """``metrics.csv`` in ``save_dir/name/version``, continued rather than replaced.

    Args: as Lightning's :class:`~lightning.pytorch.loggers.CSVLogger`.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        """The writer (created on first use)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        assert isinstance(self._experiment, _AppendingWriter)
        return self._experiment
