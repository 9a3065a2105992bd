"""Shared fixtures: tiny real datasets in both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_folder_dataset, make_jsonl_dataset


@pytest.fixture
def jsonl_root(tmp_path: Path) -> Path:
    """JSONL dataset with classes "", "7", "23" (6 train / 2 eval rows each)."""
    return make_jsonl_dataset(tmp_path / "jsonl")


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """Class-per-folder dataset (cat, dog, fox) with a ``val/`` split."""
    return make_folder_dataset(tmp_path / "folder")
