"""Atomic writes and ConfigStore registration."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore

from classifier_training.core.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
)
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


# Paths opened for writing and renames, as seen by the interpreter's audit hooks:
# every open (builtins.open, Path.open, os.open, mkstemp) is recorded on the real
# file system, nothing in the code under test is replaced.
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
FileEvent = tuple[str, Path, Path | None]
_watches: list[list[FileEvent]] = []
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _watches:
        return
    record: FileEvent
    if event == "open" and not isinstance(args[0], int) and args[2] & _WRITE_FLAGS:
        record = ("write", Path(os.path.abspath(os.fsdecode(args[0]))), None)
    elif event == "os.rename":
        src, dst = (Path(os.path.abspath(os.fsdecode(a))) for a in args[:2])
        record = ("rename", src, dst)
    else:
        return
    for watch in _watches:
        watch.append(record)


@contextmanager
def file_events() -> Iterator[list[FileEvent]]:
    """Collect ``("write", path, None)`` and ``("rename", src, dst)`` events."""
    global _hook_installed
    if not _hook_installed:  # audit hooks cannot be removed: install once
        sys.addaudithook(_audit)
        _hook_installed = True
    events: list[FileEvent] = []
    _watches.append(events)
    try:
        yield events
    finally:
        _watches.remove(events)


WRITERS: dict[str, tuple[Callable[[Path, Any], Path], Any, bytes]] = {
    "json": (
        atomic_write_json,
        {"new": [1, 2]},
        b'{\n  "new": [\n    1,\n    2\n  ]\n}\n',
    ),
    "text": (atomic_write_text, "new text\n", b"new text\n"),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_atomic_write_goes_through_a_temp_file_renamed_onto_the_target(
    tmp_path: Path, kind: str
) -> None:
    write, data, expected = WRITERS[kind]
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "result.json"
    target.write_bytes(b"old")
    # A second name for the old inode: an in-place write would change it too.
    witness = tmp_path / "witness"
    os.link(target, witness)
    with file_events() as events:
        write(target, data)
    assert target.read_bytes() == expected
    assert witness.read_bytes() == b"old"
    assert list(folder.iterdir()) == [target]
    writes = [path for kind_, path, _ in events if kind_ == "write"]
    renames = [(src, dst) for kind_, src, dst in events if kind_ == "rename"]
    assert target not in writes
    (temp,) = set(writes)  # created (mkstemp), then written
    assert temp.parent == folder  # same folder: the rename is atomic
    assert renames == [(temp, target)]


class _Unserialisable:
    """Not JSON: ``json`` raises only when it reaches this value."""


FAILURES: dict[str, tuple[Callable[[Path, Any], Path], Any, type[Exception]]] = {
    # Fails while the JSON text is being produced, after the first keys.
    "json_unserialisable": (
        atomic_write_json,
        {"a": 1, "b": [2, 3], "c": _Unserialisable()},
        TypeError,
    ),
    # A lone surrogate (what os.fsdecode makes of an undecodable file name) is
    # valid in a str but not in UTF-8: the failure comes while writing the bytes.
    "json_unencodable": (
        atomic_write_json,
        {"a": 1, "b": "x\udcff"},
        UnicodeEncodeError,
    ),
    "text_unencodable": (atomic_write_text, "first line\n\udcff\n", UnicodeEncodeError),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, case: str
) -> None:
    write, data, error = FAILURES[case]
    target = tmp_path / "metrics.json"
    target.write_bytes(b'{"old": true}\n')
    before = target.stat()
    with file_events() as events, pytest.raises(error):
        write(target, data)
    assert target.read_bytes() == b'{"old": true}\n'
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(tmp_path.iterdir()) == [target]
    assert ("write", target, None) not in events
    assert not [e for e in events if e[0] == "rename"]


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
