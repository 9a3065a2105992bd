"""Resuming a run: its ``metrics.csv`` history, the command that resumes it after
Ctrl-C, and the guard that keeps a new run out of another run's checkpoints.

Resuming is explicit (``ckpt_path=<file>``) and may go to a new run folder. The
resumed run's ``metrics.csv`` starts with the rows the interrupted run logged
before its checkpoint and continues from there; Lightning's own CSV writer does
the writing (:func:`continue_metrics_csv`).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from loguru import logger

from classifier_training.config import ConfigError
from classifier_training.core.commands import resume_command
from classifier_training.core.run_files import METRICS_CSV_FILE
from classifier_training.training.builders import is_rank_zero


def checked_ckpt_path(ckpt_path: str | None) -> str | None:
    """``ckpt_path`` of the config, refused (one line) when it names no file or
    one without the optimizer state a resume needs (a slim ``best.ckpt``)."""
    if ckpt_path is None:
        return None
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path: {ckpt_path} does not exist")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    if "optimizer_states" not in checkpoint:
        raise ConfigError(
            f"ckpt_path: {ckpt_path} holds no optimizer state to resume (best.ckpt "
            "is slim): resume from last.ckpt, or start from its weights with "
            f"model.weights_path={ckpt_path}"
        )
    return ckpt_path


def refuse_foreign_checkpoints(
    checkpoint: ModelCheckpoint, ckpt_path: str | None
) -> None:
    """Never let a new run write into (or silently resume) another run's checkpoints."""
    if ckpt_path is not None or checkpoint.dirpath is None:
        return
    folder = Path(checkpoint.dirpath)
    if folder.is_dir() and any(folder.glob("*.ckpt")):
        raise ConfigError(
            f"{folder} already holds checkpoints of another run; choose a new "
            "hydra.run.dir, or resume explicitly with ckpt_path=<file>"
        )


def earlier_metrics(ckpt_path: str | Path) -> list[dict[str, str]]:
    """The rows of ``metrics.csv`` logged before a checkpoint, as written.

    The file is the one of the checkpoint's run folder
    (``<run>/checkpoints/<file>.ckpt``); rows logged after the checkpoint are
    left out, since the resumed run logs those steps again.

    Args:
        ckpt_path: The checkpoint a run resumes from.

    Returns:
        The rows (column -> text; empty text where a row has no value), in
        file order; none when that run kept no ``metrics.csv``.
    """
    source = Path(ckpt_path).resolve().parent.parent / METRICS_CSV_FILE
    if not source.is_file():
        logger.info(f"resuming without earlier metrics: no {source}")
        return []
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    resumed_at = int(checkpoint.get("global_step", 0))
    with source.open(newline="", encoding="utf-8") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if int(float(row.get("step") or 0)) < resumed_at
        ]
    logger.info(f"resuming at step {resumed_at}: {len(rows)} earlier metrics rows kept")
    return rows


def _number(text: str) -> float:
    """A logged value read back: ints stay ints, so the row is written as it was."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def continue_metrics_csv(loggers: Sequence[Logger], ckpt_path: str | None) -> None:
    """Start each CSV logger's ``metrics.csv``: empty, or a resumed run's history.

    Creating Lightning's CSV writer removes a ``metrics.csv`` it finds in its
    folder, so the earlier rows are read first (the checkpoint's run may be this
    folder), then handed to the writer, which writes them and appends what the
    run logs next, widening the header for new columns.

    Args:
        loggers: The run's loggers (Lightning ``CSVLogger`` ones act).
        ckpt_path: The checkpoint the run resumes from, if any.
    """
    csv_loggers = [lg for lg in loggers if isinstance(lg, CSVLogger)]
    if not csv_loggers or not is_rank_zero():  # the other ranks write no files
        return
    rows = earlier_metrics(ckpt_path) if ckpt_path is not None else []
    for csv_logger in csv_loggers:
        writer = csv_logger.experiment
        for row in rows:
            values = {k: _number(v) for k, v in row.items() if k != "step" and v}
            writer.log_metrics(values, step=int(float(row["step"])))
        writer.save()


def last_checkpoint_path(callbacks: Sequence[Callback]) -> Path | None:
    """``last.ckpt`` of the checkpoint callback without a monitor, if one exists."""
    for callback in callbacks:
        if (
            isinstance(callback, ModelCheckpoint)
            and callback.monitor is None
            and callback.dirpath is not None
        ):
            path = Path(callback.dirpath) / f"{callback.filename or 'last'}.ckpt"
            if path.is_file():
                return path.resolve()
    return None


@contextmanager
def resume_hint_on_interrupt(
    trainer: L.Trainer, callbacks: Sequence[Callback]
) -> Iterator[None]:
    """Around ``fit``: after Ctrl-C, print the command that resumes the run.

    Lightning stops cleanly on Ctrl-C (``trainer.interrupted``) and the
    interruption goes on to end the program; rank 0 prints the command first.
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted and is_rank_zero():
            last = last_checkpoint_path(callbacks)
            given = HydraConfig.get().overrides
            print(
                "interrupted; resume with:"
                if last
                else "interrupted before the first checkpoint; start again with:"
            )
            print(resume_command(sys.argv, [*given.task, *given.hydra], last))
        raise
