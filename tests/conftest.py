"""Shared fixtures: tiny real datasets in both layouts, a tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_training.training.builders import register_configs
from tests.helpers import make_folder_dataset, make_jsonl_dataset
from tests.inference_support import (
    LearnedDemo,
    TrainedRun,
    build_color_model,
    build_learned_demo,
    build_trained_run,
)


@pytest.fixture(scope="session", autouse=True)
def config_nodes() -> None:
    """The config nodes defined in code, stored as ``classifier-train`` does, for
    the tests that compose configs themselves."""
    register_configs()


@pytest.fixture
def jsonl_root(tmp_path: Path) -> Path:
    """JSONL dataset with classes "", "7", "23" (6 train / 2 eval rows each)."""
    return make_jsonl_dataset(tmp_path / "jsonl")


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """Class-per-folder dataset (cat, dog, fox) with a ``val/`` split."""
    return make_folder_dataset(tmp_path / "folder")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A finished two-epoch demo run on a tiny dataset, with its ``model.onnx``."""
    return build_trained_run(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def color_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.onnx`` whose class is the brightest channel (blue, green, red)."""
    return build_color_model(tmp_path_factory.mktemp("color_model"))


@pytest.fixture(scope="session")
def learned_demo(tmp_path_factory: pytest.TempPathFactory) -> LearnedDemo:
    """A demo run that has learned ten digit classes, with ``model.int8.onnx``
    (for the slow tests: its training takes about a minute)."""
    return build_learned_demo(tmp_path_factory.mktemp("learned_demo"))
