"""The Apple silicon rule: no DataLoader workers when the Trainer runs on MPS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from loguru import logger

from classifier_training.config import ConfigError, load_data_config
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.loader_settings import (
    effective_num_workers,
    mps_is_available,
    runs_on_mps,
)


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Messages loguru emits while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO")
    yield lines
    logger.remove(sink)


@pytest.mark.parametrize(
    ("accelerator", "mps_available", "expected"),
    [
        ("mps", False, True),  # asked for explicitly: Lightning fails later if absent
        ("MPS", True, True),
        ("auto", True, True),
        ("auto", False, False),
        ("gpu", True, True),  # Lightning maps "gpu" to MPS on a Mac
        ("gpu", False, False),
        ("cpu", True, False),  # CPU on a Mac may keep its workers
        ("cuda", True, False),
    ],
)
def test_runs_on_mps(accelerator: str, mps_available: bool, expected: bool) -> None:
    assert runs_on_mps(accelerator, mps_available=mps_available) is expected


def test_workers_forced_to_zero_on_mps_with_one_log_line(
    log_lines: list[str],
) -> None:
    assert effective_num_workers(4, "auto", mps_available=True) == 0
    assert len(log_lines) == 1
    assert "data.num_workers=4 -> 0" in log_lines[0]
    assert "MPS" in log_lines[0]


@pytest.mark.parametrize(
    ("requested", "accelerator", "mps_available"),
    [(4, "auto", False), (2, "cpu", True), (3, "cuda", False), (0, "mps", True)],
)
def test_workers_kept_off_mps_and_silent(
    requested: int, accelerator: str, mps_available: bool, log_lines: list[str]
) -> None:
    kept = effective_num_workers(requested, accelerator, mps_available=mps_available)
    assert kept == requested
    assert log_lines == []


def test_negative_worker_count_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"data\.num_workers must be >= 0, got -1"):
        effective_num_workers(-1, "cpu")


def test_default_availability_follows_this_machine() -> None:
    # Without the override the real check runs: on this machine it agrees with torch.
    present = torch.backends.mps.is_available()
    assert mps_is_available() is present
    assert runs_on_mps("auto") is present
    assert effective_num_workers(2, "auto") == (0 if present else 2)


def _datamodule(root: Path, accelerator: str, **values: Any) -> ImageFolderDataModule:
    settings: dict[str, Any] = {"data_root": root, "image_size": 16, "batch_size": 4}
    settings.update(values)
    dm = ImageFolderDataModule(
        load_data_config(settings), arch="resnet18", accelerator=accelerator
    )
    dm.setup("fit")
    return dm


def test_the_data_module_applies_the_mps_rule_and_loader_settings(
    jsonl_root: Path,
) -> None:
    on_mps = _datamodule(jsonl_root, "mps", num_workers=2)
    for loader in (on_mps.train_dataloader(), on_mps.val_dataloader()):
        assert loader.num_workers == 0
        assert not loader.persistent_workers
    on_cpu = _datamodule(
        jsonl_root, "cpu", num_workers=2, prefetch_factor=3, persistent_workers=False
    )
    loader = on_cpu.train_dataloader()
    assert loader.num_workers == 2
    assert loader.prefetch_factor == 3
    assert not loader.persistent_workers
    assert not loader.pin_memory  # pinned pages only help a copy to a GPU
    batch = next(iter(loader))
    assert batch["images"].shape == (4, 3, 16, 16)
    kept = _datamodule(jsonl_root, "cpu", num_workers=1).train_dataloader()
    assert kept.persistent_workers
    assert kept.prefetch_factor == 2  # PyTorch's default when unset


def test_loader_settings_are_validated(jsonl_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.prefetch_factor"):
        load_data_config({"data_root": jsonl_root, "prefetch_factor": 0})
    with pytest.raises(ConfigError, match=r"data\.augment_on"):
        load_data_config({"data_root": jsonl_root, "augment_on": "gpu"})
