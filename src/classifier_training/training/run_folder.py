"""The run folder's life: ``outputs/latest`` points at the newest run that started,
and a run that never started (an error at start-up) leaves no folder behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from loguru import logger

from classifier_training.core.run_files import (
    HYDRA_DIR,
    METRICS_CSV_FILE,
    TRAIN_LOG_FILE,
)


def _single_run() -> bool:
    """Whether this is a plain run (a sweep's jobs have their sweep folder)."""
    return not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN


def point_latest_at(run_dir: Path, link: str | Path | None) -> None:
    """Make ``link`` a relative symbolic link to ``run_dir``, replaced atomically.

    Where links cannot be made (some Windows accounts, some file systems) one
    line says so and the run goes on.

    Args:
        run_dir: The run folder that just started.
        link: The link (``paths.latest``, e.g. ``outputs/latest``); ``None``
            leaves it out, as do sweeps and runs outside the link's folder
            (``hydra.run.dir`` elsewhere).
    """
    if link is None or not _single_run():
        return
    link = Path(link)
    if not run_dir.resolve().is_relative_to(link.parent.resolve()):
        return
    if link.exists() and not link.is_symlink():
        logger.info(f"{link} is not a link; left as it is")
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(run_dir.resolve(), link.parent.resolve())
    staged = link.with_name(f".{link.name}.{os.getpid()}")
    try:
        staged.unlink(missing_ok=True)
        os.symlink(target, staged, target_is_directory=True)
        os.replace(staged, link)  # atomic: readers see the old or the new link
    except (OSError, NotImplementedError) as error:
        staged.unlink(missing_ok=True)
        logger.info(f"{link} not updated: symbolic links unavailable here ({error})")


def _hydra_only(run_dir: Path) -> bool:
    """Whether the folder holds only what Hydra and the loggers write at start-up."""
    for path in run_dir.rglob("*"):
        relative = path.relative_to(run_dir)
        if path.is_dir() or relative.parts[0] in (HYDRA_DIR, TRAIN_LOG_FILE):
            continue
        if relative == Path(METRICS_CSV_FILE) and path.stat().st_size == 0:
            continue
        return False
    return True


def discard_unstarted_run(run_dir: Path) -> None:
    """Remove the folder of a run stopped at start-up (and its date folder, if
    that is left empty); a folder holding anything the run made is kept."""
    if not _single_run() or not run_dir.is_dir() or not _hydra_only(run_dir):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
