"""Atomic writes and ConfigStore registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore

from classifier_training.core.io import atomic_path, atomic_write_json
from classifier_training.utils.hydra import config_node_for, register


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"b": [1, 2]})
    assert json.loads(target.read_text()) == {"b": [1, 2]}
    assert list(tmp_path.iterdir()) == [target]
    assert target.stat().st_mode & 0o044  # readable by others, unlike mkstemp's 0600


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")

    def interrupted_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_temp_file_keeps_the_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "sub" / "figure.png") as tmp:
        assert tmp.suffix == ".png"
        assert tmp.parent == tmp_path / "sub"
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "figure.png").read_bytes() == b"x"


class _Widget:
    def __init__(self, size: int = 3, name: str = "w", num_classes: int = 0) -> None:
        self.size, self.name = size, name


def test_register_stores_constructor_defaults() -> None:
    register(group="widget", name="small")(_Widget)
    node = ConfigStore.instance().repo["widget"]["small.yaml"].node
    assert node["_target_"] == f"{__name__}._Widget"
    assert node["size"] == 3
    assert node["name"] == "w"
    assert "num_classes" not in node


def test_register_requires_defaults() -> None:
    class NoDefault:
        def __init__(self, size: int) -> None:
            self.size = size

    with pytest.raises(TypeError, match="'size' needs a default"):
        config_node_for(NoDefault)
