"""Write a synthetic dataset to disk: images, annotations and completion marker.

Layout written to ``config.out_dir``::

    synth_config.json            # configuration used (written first)
    train/annotations.jsonl      # one JSON object per image
    train/images/<label>_<index>.jpg
    valid/...
    test/...
    test_degraded/...            # only with config.degrade (see .degraded)
    .complete                    # marker written last, holds the row counts

With ``config.tracks`` each split holds player tracks instead (see
:mod:`.tracks`): ``<split>/images/<track_id>_<frame>.jpg``, rows in track order,
each with ``metadata.track_id`` and ``metadata.frame``.

Images are rendered in worker processes; since every image seeds its own
generator, the files are byte-identical for any number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from classifier_training.core.io import atomic_write_text
from classifier_training.synthetic.classes import label_to_stem
from classifier_training.synthetic.config import (
    DEGRADED_SPLIT,
    SPLITS,
    SynthConfig,
    SynthError,
    default_workers,
)
from classifier_training.synthetic.render import (
    Metadata,
    fonts_for_split,
    render_crop,
    render_track_frame,
    track_length,
)
from classifier_training.synthetic.tracks import (
    TRACK_KEY,
    frame_file_name,
    track_id,
)

__all__ = [
    "ANNOTATIONS_NAME",
    "CONFIG_NAME",
    "IMAGES_DIRNAME",
    "MARKER_NAME",
    "PREFIX",
    "dataset_is_complete",
    "generate_dataset",
]

MARKER_NAME = ".complete"
CONFIG_NAME = "synth_config.json"
ANNOTATIONS_NAME = "annotations.jsonl"
IMAGES_DIRNAME = "images"
PREFIX = "jersey number"
"""The ``prefix`` of every annotation row (the task the label answers)."""

# Temporary files a killed run may leave at the top level: core.io's
# (".<stem>.<random>.tmp<suffix>") and those of earlier releases ("<name>.tmp").
_STALE_TMP_PATTERNS = (
    f".{Path(CONFIG_NAME).stem}.*.tmp.json",
    f".{MARKER_NAME}.*.tmp",
    f"{CONFIG_NAME}.tmp",
    f"{MARKER_NAME}.tmp",
)

# split, label, index (of the crop or track), frame (None: a crop), output path
_Task = tuple[str, str, int, int | None, str]
_Fonts = dict[str, dict[str, str]]  # split -> font stem -> path
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(cfg: SynthConfig, fonts: _Fonts) -> None:
    _WORKER_STATE["cfg"] = cfg
    _WORKER_STATE["fonts"] = fonts


def _run_task(task: _Task) -> tuple[str, Metadata]:
    """Render and save one image; returns its row's label and metadata."""
    split, label, index, frame, path = task
    cfg: SynthConfig = _WORKER_STATE["cfg"]
    fonts = _WORKER_STATE["fonts"][split]
    if frame is None:
        image, quality, meta = render_crop(cfg, fonts, split, label, index)
        row_label = label
    else:
        image, quality, row_label, meta = render_track_frame(
            cfg, fonts, split, label, index, frame
        )
        meta = {TRACK_KEY: track_id(split, label, index), "frame": frame, **meta}
    image.save(path, format="JPEG", quality=quality)
    return row_label, meta


def _file_name(label: str, index: int) -> str:
    return f"{label_to_stem(label)}_{index:05d}.jpg"


def _tasks(cfg: SynthConfig) -> list[_Task]:
    counts = cfg.per_class_counts()
    tasks: list[_Task] = []
    for split in cfg.splits:
        image_dir = cfg.out_dir / split / IMAGES_DIRNAME
        for label in cfg.classes:
            for index in range(counts[split]):
                if not cfg.tracks:
                    path = image_dir / _file_name(label, index)
                    tasks.append((split, label, index, None, str(path)))
                    continue
                track = track_id(split, label, index)
                for frame in range(track_length(cfg, split, label, index)):
                    path = image_dir / frame_file_name(track, frame)
                    tasks.append((split, label, index, frame, str(path)))
    return tasks


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dataset_is_complete(config: SynthConfig) -> bool:
    """Whether ``config.out_dir`` holds a finished dataset made with ``config``.

    Args:
        config: The configuration to compare with.

    Returns:
        True if the completion marker exists and the stored configuration matches.
    """
    out = config.out_dir
    if not (out / MARKER_NAME).is_file():
        return False
    return bool(_read_json(out / CONFIG_NAME) == config.fingerprint())


def _prepare_out_dir(cfg: SynthConfig) -> None:
    out = cfg.out_dir
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not cfg.overwrite:
            if (out / MARKER_NAME).is_file():
                reason = "holds a dataset generated with a different configuration"
            else:
                reason = (
                    "is not empty and has no completion marker "
                    f"({MARKER_NAME}; interrupted run or unrelated files)"
                )
            raise SynthError(
                f"output directory {out} {reason}; pass --overwrite "
                "(overwrite=True) to replace it, or choose another directory"
            )
        # Remove only what this generator writes; leave anything else alone.
        for name in (MARKER_NAME, CONFIG_NAME):
            (out / name).unlink(missing_ok=True)
        for pattern in _STALE_TMP_PATTERNS:
            for stale in out.glob(pattern):
                stale.unlink(missing_ok=True)
        for split in (*SPLITS, DEGRADED_SPLIT):
            if (out / split).is_dir():
                shutil.rmtree(out / split)
            elif (out / split).exists():
                (out / split).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _chunksize(n_tasks: int, workers: int) -> int:
    return max(1, min(64, n_tasks // (workers * 8)))


def _iter_metadata(
    cfg: SynthConfig, fonts: _Fonts, tasks: list[_Task], workers: int
) -> Iterator[tuple[str, Metadata]]:
    if workers <= 1:
        _init_worker(cfg, fonts)
        yield from map(_run_task, tasks)
        return
    # "spawn" avoids fork-after-threads hazards when imported next to torch.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, fonts)) as pool:
        yield from pool.imap(
            _run_task, tasks, chunksize=_chunksize(len(tasks), workers)
        )


def _existing_counts(config: SynthConfig) -> dict[str, int] | None:
    """Row counts of a complete dataset made with ``config``, else None."""
    if not dataset_is_complete(config):
        return None
    marker = _read_json(config.out_dir / MARKER_NAME)
    counts = marker.get("counts") if isinstance(marker, dict) else None
    if isinstance(counts, dict) and set(counts) == set(config.splits):
        return {split: int(counts[split]) for split in config.splits}
    return None


def generate_dataset(
    config: SynthConfig, *, log: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Generate the synthetic jersey-number dataset described by ``config``.

    If ``config.out_dir`` already holds a complete dataset generated with the
    same configuration this is a no-op. ``synth_config.json`` is written first
    and the ``.complete`` marker last, so an interrupted run is detectable.

    Args:
        config: Generation settings.
        log: Optional callback receiving human-readable progress messages.

    Returns:
        Number of annotation rows (images) per split.

    Raises:
        SynthError: If the output directory is non-empty and either incomplete
            or generated with a different configuration, and
            ``config.overwrite`` is false.
    """
    emit = log or (lambda _msg: None)
    out = config.out_dir
    existing = _existing_counts(config)
    if existing is not None:
        emit(f"dataset already exists at {out} (same config); nothing to do")
        return existing
    _prepare_out_dir(config)

    start = time.perf_counter()
    fonts = {split: fonts_for_split(config, split) for split in config.splits}
    atomic_write_text(
        out / CONFIG_NAME, json.dumps(config.fingerprint(), indent=2) + "\n"
    )
    for split in config.splits:
        (out / split / IMAGES_DIRNAME).mkdir(parents=True, exist_ok=True)
    tasks = _tasks(config)
    workers = min(config.workers or default_workers(), max(1, len(tasks)))
    unit = "tracks" if config.tracks else "images"
    emit(
        f"rendering {len(tasks)} images ({len(config.classes)} classes, "
        f"{config.per_class_counts()} {unit} per class) with {workers} worker(s) "
        f"to {out}"
    )

    rows: dict[str, list[str]] = {split: [] for split in config.splits}
    for (split, _, _, _, path), (label, meta) in zip(
        tasks, _iter_metadata(config, fonts, tasks, workers), strict=True
    ):
        row = {
            "image": f"{IMAGES_DIRNAME}/{Path(path).name}",
            "prefix": PREFIX,
            "suffix": label,
            "metadata": meta,
        }
        rows[split].append(json.dumps(row, sort_keys=False))

    for split in config.splits:
        atomic_write_text(
            out / split / ANNOTATIONS_NAME, "".join(line + "\n" for line in rows[split])
        )
    counts = {split: len(rows[split]) for split in config.splits}
    atomic_write_text(
        out / MARKER_NAME, json.dumps({"counts": counts}, indent=2) + "\n"
    )
    emit(
        f"wrote {sum(counts.values())} images {counts} in "
        f"{time.perf_counter() - start:.1f}s"
    )
    return counts
