"""Resuming: ``metrics.csv`` continued through Lightning's own CSV writer, the
command printed on Ctrl-C, the checkpoint a run resumes from."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from classifier_training.config import ConfigError
from classifier_training.training.resume import (
    checked_ckpt_path,
    continue_metrics_csv,
    last_checkpoint_path,
    resume_command,
)

# Lightning warns of a non-empty run folder (.hydra/) each time a writer starts.
pytestmark = pytest.mark.filterwarnings("ignore:Experiment logs directory")

#: Two epochs of three steps as a run logs them: a row per step, then the
#: epoch's validation and training rows (at the epoch's last step).
HISTORY: list[tuple[int, dict[str, float]]] = [
    (0, {"lr-AdamW": 0.001}),
    (1, {"lr-AdamW": 0.002}),
    (2, {"lr-AdamW": 0.003}),
    (2, {"val/loss": 1.0986122886681098, "val/acc_top1": 0.5, "epoch": 0}),
    (2, {"train/loss": 1.1, "train/acc_top1": 1 / 3, "epoch": 0}),
    (3, {"lr-AdamW": 0.004}),
    (4, {"lr-AdamW": 0.005}),
    (5, {"lr-AdamW": 0.006}),
    (5, {"val/loss": 0.9, "val/acc_top1": 2 / 3, "epoch": 1}),
    (5, {"train/loss": 0.8, "train/acc_top1": 0.5, "epoch": 1}),
]
#: The checkpoint of epoch 0 (``global_step``: optimizer steps taken).
RESUMED_AT = 3


def run_folder(path: Path) -> Path:
    """A run folder as Hydra makes it (never empty: ``.hydra/``)."""
    (path / ".hydra").mkdir(parents=True)
    return path


def csv_logger(folder: Path) -> CSVLogger:
    """The logger of ``conf/logging/csv.yaml``."""
    return CSVLogger(folder, name="", version="")


def log(logger: CSVLogger, rows: list[tuple[int, dict[str, float]]]) -> None:
    """Log as the trainer does: each row written when logged."""
    for step, values in rows:
        logger.log_metrics(dict(values), step=step)
        logger.save()


def read(folder: Path) -> list[dict[str, str]]:
    """``metrics.csv``'s rows, without their empty cells."""
    with (folder / "metrics.csv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]


def interrupted_run(path: Path) -> Path:
    """A run stopped in epoch 1: its whole history and epoch 0's checkpoint."""
    folder = run_folder(path)
    log(csv_logger(folder), HISTORY)
    (folder / "checkpoints").mkdir()
    checkpoint = folder / "checkpoints" / "last.ckpt"
    torch.save({"global_step": RESUMED_AT, "epoch": 0}, checkpoint)
    return checkpoint


#: What the resumed run logs: epoch 1 again, with a column that is new.
RESUMED: list[tuple[int, dict[str, float]]] = [
    (3, {"lr-AdamW": 0.004}),
    (5, {"val/loss": 0.7, "val/acc_top1": 1.0, "val/acc_class/7": 1.0, "epoch": 1}),
]


@pytest.mark.parametrize("into", ["a new folder", "the same folder"])
def test_a_resumed_run_keeps_the_rows_before_its_checkpoint(
    tmp_path: Path, into: str
) -> None:
    checkpoint = interrupted_run(tmp_path / "first")
    earlier = read(tmp_path / "first")
    assert len(earlier) == len(HISTORY)
    folder = (
        run_folder(tmp_path / "resumed")
        if into == "a new folder"
        else tmp_path / "first"
    )
    logger = csv_logger(folder)
    continue_metrics_csv([logger], str(checkpoint))
    log(logger, RESUMED)
    rows = read(folder)
    # Epoch 0 exactly as first written (same text), nothing of the steps the
    # resumed run logs again, then the resumed run's rows.
    kept = [row for row in earlier if int(row["step"]) < RESUMED_AT]
    assert len(kept) == 5
    assert rows[: len(kept)] == kept
    assert rows[len(kept) :] == [
        {"step": "3", "lr-AdamW": "0.004"},
        {
            "step": "5",
            "epoch": "1",
            "val/loss": "0.7",
            "val/acc_top1": "1.0",
            "val/acc_class/7": "1.0",
        },
    ]


def test_a_new_run_starts_its_own_history(tmp_path: Path) -> None:
    interrupted_run(tmp_path / "old")  # a metrics.csv the new run must not extend
    logger = csv_logger(tmp_path / "old")
    continue_metrics_csv([logger], None)
    log(logger, RESUMED[:1])
    assert read(tmp_path / "old") == [{"step": "3", "lr-AdamW": "0.004"}]


def test_resuming_from_a_run_without_metrics_starts_empty(tmp_path: Path) -> None:
    checkpoint = interrupted_run(tmp_path / "first")
    (tmp_path / "first" / "metrics.csv").unlink()
    folder = run_folder(tmp_path / "resumed")
    logger = csv_logger(folder)
    continue_metrics_csv([logger], str(checkpoint))
    log(logger, RESUMED[:1])
    assert read(folder) == [{"step": "3", "lr-AdamW": "0.004"}]


def test_a_missing_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(ConfigError, match=f"ckpt_path: {missing} does not exist"):
        checked_ckpt_path(str(missing))
    assert checked_ckpt_path(None) is None


def test_the_resume_command_repeats_the_run_with_its_checkpoint() -> None:
    argv = ["/x/train.py", "--config-name", "train_demo", "data.data_root=/d x"]
    overrides = [
        "data.data_root=/d x",
        "ckpt_path=/old/last.ckpt",  # replaced by the new checkpoint
        "hydra.run.dir=/runs/a",
        "hydra.mode=RUN",  # Hydra's own, not the user's
    ]
    command = resume_command(argv, overrides, Path("/runs/a/checkpoints/last.ckpt"))
    assert command == (
        "classifier-train --config-name train_demo 'data.data_root=/d x' "
        "hydra.run.dir=/runs/a ckpt_path=/runs/a/checkpoints/last.ckpt"
    )
    assert resume_command(["train.py"], ["a=1"], None) == "classifier-train a=1"


def test_the_last_checkpoint_is_the_unmonitored_callbacks(tmp_path: Path) -> None:
    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val/loss")
    last = ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None)
    assert last_checkpoint_path([best, last]) is None  # not saved yet
    for name in ("best", "last"):
        (tmp_path / f"{name}.ckpt").write_bytes(b"")
    assert last_checkpoint_path([best, last]) == (tmp_path / "last.ckpt").resolve()
