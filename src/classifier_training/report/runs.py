"""What the sweep summary and the compare page know of one run, read from its folder.

A run folder is read, never the process that wrote it: ``metrics.json`` (final
numbers), ``metrics.csv`` (per-epoch curves), ``.hydra/config.yaml`` and
``.hydra/overrides.yaml`` (what was asked), and ``job_status.json`` (written
when a sweep's job failed or a search pruned it). A job without ``metrics.json``
and without a status is one that never finished (killed, or still running).
A sweep folder is any folder whose subfolders are run folders (Hydra's
``multirun/<date>/<time>``, a ``classifier-tune`` study).
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from classifier_training.core import run_files as rf
from classifier_training.core.errors import ClassifierError, root_cause_line
from classifier_training.core.io import atomic_write_json
from classifier_training.plots.history import read_history_file
from classifier_training.report.run import ReportError, read_json

OK = "ok"
FAILED = "failed"
PRUNED = "pruned"
#: What the summary calls a job with neither metrics.json nor a status file.
UNFINISHED = "no metrics.json: the job failed, was stopped, or is still running"
DEFAULT_MONITOR = ("val/acc_top1", "max")
#: Columns of the results, in order (the sweep's CSV adds the job and overrides).
RESULT_COLUMNS = (
    "status",
    "val_top1",
    "val_top5",
    "test_top1",
    "test_top5",
    "val_ece",
    "test_ece",
    "best_epoch",
    "epochs",
    "wall_time_s",
    "error",
    "run_dir",
)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``).

    Lists stay whole values; an empty mapping is kept as ``{}`` so that a
    group switched to nothing still shows.
    """
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def parse_overrides(lines: Iterable[str]) -> dict[str, str]:
    """Hydra override lines as ``key -> value`` (``+`` dropped from the key).

    ``+a=1`` and ``a=1`` set the same value, so they share a column; a deletion
    (``~a``) keeps its ``~``.
    """
    parsed: dict[str, str] = {}
    for line in lines:
        key, _, value = str(line).partition("=")
        parsed[key.lstrip("+")] = value
    return parsed


def varying_keys(mappings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys whose value is not the same in every mapping (absent counts), sorted."""
    keys = sorted({key for mapping in mappings for key in mapping})
    missing = object()
    return [
        key
        for key in keys
        if len({repr(m.get(key, missing)) for m in mappings}) > 1
        or any(key not in m for m in mappings)
    ]


def monitor_of(config: Mapping[str, Any]) -> tuple[str, str]:
    """The metric and mode of the run's best-checkpoint callback.

    Args:
        config: The flattened config (:func:`flatten`).

    Returns:
        ``(monitor, mode)``, e.g. ``("val/acc_top1", "max")``; the project's
        default when the config names none.
    """
    for key, target in config.items():
        if not key.endswith("._target_") or not str(target).endswith("ModelCheckpoint"):
            continue
        node = key.removesuffix("._target_")
        monitor = config.get(f"{node}.monitor")
        if monitor:
            return str(monitor), str(config.get(f"{node}.mode") or "min")
    return DEFAULT_MONITOR


def error_line(error: BaseException) -> str:
    """One line for a failed job: a :class:`ClassifierError`'s message (it names
    the file or key at fault), else the root cause's type and message."""
    if isinstance(error, ClassifierError):
        lines = str(error).strip().splitlines() or [type(error).__name__]
        return lines[0]
    return root_cause_line(error)


def write_job_status(
    run_dir: Path,
    status: str,
    error: str,
    detail: str | None = None,
    overrides: Sequence[str] | None = None,
) -> Path:
    """Record that a job failed or was pruned (``job_status.json``).

    Args:
        run_dir: The job's run folder.
        status: :data:`FAILED` or :data:`PRUNED`.
        error: One line: why.
        detail: More (a traceback), kept for whoever opens the file.
        overrides: The job's overrides, for a job that failed before Hydra
            recorded them (no ``.hydra/overrides.yaml``).

    Returns:
        The file's path.
    """
    record: dict[str, Any] = {"status": status, "error": error}
    if detail:
        record["detail"] = detail
    if overrides is not None and not (run_dir / rf.OVERRIDES_FILE).is_file():
        record["overrides"] = list(overrides)
    return atomic_write_json(run_dir / rf.JOB_STATUS_FILE, record)


def exception_detail(error: BaseException) -> str:
    """The full traceback of ``error``, as text."""
    return "".join(traceback.format_exception(error))


def clear_job_status(run_dir: Path) -> None:
    """Forget an earlier failure of a job folder that has now run again."""
    (run_dir / rf.JOB_STATUS_FILE).unlink(missing_ok=True)


@dataclass(frozen=True)
class RunRecord:
    """One run folder, as the summary and the compare page see it.

    Attributes:
        path: The run folder.
        status: :data:`OK`, :data:`FAILED` or :data:`PRUNED`.
        error: Why it failed or was pruned (one line; empty when ok).
        overrides: The job's Hydra overrides (``key -> value``).
        config: The composed config, flattened to dotted keys.
        metrics: ``metrics.json`` (empty when missing).
        history: Per-epoch metrics from ``metrics.csv``.
        monitor: The metric that picks the best checkpoint.
        mode: ``max`` or ``min``.
    """

    path: Path
    status: str
    error: str
    overrides: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    monitor: str = DEFAULT_MONITOR[0]
    mode: str = DEFAULT_MONITOR[1]

    @property
    def finished(self) -> bool:
        """Whether the run wrote its final metrics (ok or pruned)."""
        return bool(self.metrics)

    def metric(self, split: str, name: str) -> float | None:
        """A final number of ``metrics.json`` (``metric("val", "acc_top1")``)."""
        entry = self.metrics.get(split)
        return _number(entry.get(name)) if isinstance(entry, Mapping) else None

    def ece(self, split: str) -> float | None:
        """The split's expected calibration error after temperature scaling."""
        entry = (self.metrics.get("calibration") or {}).get(split)
        return _number(entry.get("ece_after")) if isinstance(entry, Mapping) else None

    @property
    def monitored(self) -> float | None:
        """The final value of the monitored metric (``val/acc_top1`` -> val top-1)."""
        split, _, name = self.monitor.partition("/")
        return self.metric(split, name)

    @property
    def best_epoch(self) -> int | None:
        """The epoch (0-based, as ``epoch_XXX``) with the best monitored value."""
        points = [
            (r[self.monitor], r["epoch"]) for r in self.history if self.monitor in r
        ]
        if not points:
            return None
        pick = max if self.mode == "max" else min
        best = pick(value for value, _ in points)
        return int(next(epoch for value, epoch in points if value == best))

    @property
    def epochs(self) -> int | None:
        """Epochs trained (``metrics.json``, else the curves of an unfinished run)."""
        completed = self.metrics.get("epochs_completed")
        if isinstance(completed, int):
            return completed
        return len(self.history) if self.history else None

    def results(self) -> dict[str, object]:
        """The :data:`RESULT_COLUMNS` of this run (``None`` where unknown)."""
        return {
            "status": self.status,
            "val_top1": self.metric("val", "acc_top1"),
            "val_top5": self.metric("val", "acc_top5"),
            "test_top1": self.metric("test", "acc_top1"),
            "test_top5": self.metric("test", "acc_top5"),
            "val_ece": self.ece("val"),
            "test_ece": self.ece("test"),
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "wall_time_s": _number(self.metrics.get("wall_time_s")),
            "error": self.error,
            "run_dir": str(self.path),
        }

    def per_class_top1(self, split: str) -> dict[str, float]:
        """Top-1 accuracy (recall) per class display name on ``split``."""
        entry = self.metrics.get(split)
        if not isinstance(entry, Mapping):
            return {}
        per_class = entry.get("per_class")
        if isinstance(per_class, Mapping) and per_class:
            return {
                str(name): float(row["recall"])
                for name, row in per_class.items()
                if isinstance(row, Mapping) and _number(row.get("recall")) is not None
            }
        accuracy = entry.get("per_class_acc")
        if isinstance(accuracy, Mapping):
            return {
                str(k): float(v) for k, v in accuracy.items() if _number(v) is not None
            }
        return {}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a training run (its config or its metrics are there)."""
    return (folder / rf.CONFIG_FILE).is_file() or (folder / rf.METRICS_FILE).is_file()


def _natural_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in path.parts)


def sweep_jobs(folder: Path) -> list[Path]:
    """The run folders of a sweep folder, in job order (``2`` before ``10``).

    Hydra's ``hydra.sweep.subdir`` may nest them (``lr=0.1/seed=0``): every
    folder below ``folder`` with a ``.hydra/overrides.yaml`` (or a
    ``job_status.json``: a job that failed before Hydra wrote it) is a job.
    """
    jobs = {
        marker.parent.parent
        for marker in folder.glob(f"**/{rf.OVERRIDES_FILE}")
        if marker.parent.parent != folder
    } | {
        marker.parent
        for marker in folder.glob(f"**/{rf.JOB_STATUS_FILE}")
        if marker.parent != folder
    }
    return sorted(jobs, key=lambda p: _natural_key(p.relative_to(folder)))


def is_sweep_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a sweep's jobs (and is not itself a run)."""
    if is_run_folder(folder):
        return False
    return (folder / rf.MULTIRUN_FILE).is_file() or bool(sweep_jobs(folder))


def read_run(folder: Path) -> RunRecord:
    """Read what a run folder holds (missing files leave their parts empty).

    Args:
        folder: The run folder.

    Returns:
        The record.
    """
    metrics = read_json(folder / rf.METRICS_FILE)
    status_record = read_json(folder / rf.JOB_STATUS_FILE)
    if status_record.get("status") in (FAILED, PRUNED):
        status, error = (
            str(status_record["status"]),
            str(status_record.get("error", "")),
        )
    elif metrics:
        status, error = OK, ""
    else:
        status, error = FAILED, UNFINISHED
    raw_config = _read_yaml(folder / rf.CONFIG_FILE)
    config = flatten(raw_config) if isinstance(raw_config, Mapping) else {}
    raw_overrides = _read_yaml(folder / rf.OVERRIDES_FILE)
    if raw_overrides is None:  # failed before Hydra wrote it: the status has them
        raw_overrides = status_record.get("overrides")
    overrides = (
        parse_overrides(raw_overrides) if isinstance(raw_overrides, list) else {}
    )
    monitor, mode = monitor_of(config)
    return RunRecord(
        path=folder,
        status=status,
        error=error,
        overrides=overrides,
        config=config,
        metrics=metrics,
        history=read_history_file(folder / rf.METRICS_CSV_FILE),
        monitor=monitor,
        mode=mode,
    )


def expand_folders(folders: Sequence[Path]) -> list[Path]:
    """Run folders of the arguments: a run stays, a sweep becomes its jobs.

    Raises:
        ReportError: If an argument is missing or neither a run nor a sweep.
    """
    runs: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise ReportError(f"{folder}: folder not found")
        if is_run_folder(folder):
            runs.append(folder)
        elif is_sweep_folder(folder):
            runs.extend(sweep_jobs(folder))
        else:
            raise ReportError(
                f"{folder}: not a run folder (no {rf.CONFIG_FILE} or "
                f"{rf.METRICS_FILE}) and not a sweep folder (no job folders)"
            )
    return runs


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing parts of each path that tell them apart (``0``, ``1``;
    ``2024-06-01/10-00``)."""
    resolved = [p.resolve() for p in paths]
    depth = max((len(p.parts) for p in resolved), default=1)
    for take in range(1, depth + 1):
        labels = ["/".join(p.parts[-take:]) for p in resolved]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in resolved]


_SPACES = re.compile(r"\s+")


def first_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, whitespace collapsed, cut to ``limit``."""
    for line in text.splitlines():
        if line.strip():
            return _SPACES.sub(" ", line.strip())[:limit]
    return ""


def child_error_line(lines: Sequence[str], code: int) -> str:
    """A finished command's one-line error, from the tail of its stderr.

    Args:
        lines: The last lines it wrote.
        code: Its exit status.

    Returns:
        Its ``error: ...`` line (the project's commands end with one), else its
        last non-empty line, prefixed with the exit status.
    """
    for line in reversed(lines):
        if line.startswith("error: "):
            return first_line(line.removeprefix("error: "))
    last = next((first_line(line) for line in reversed(lines) if line.strip()), "")
    return f"exit {code}: {last}" if last else f"exit {code}"
