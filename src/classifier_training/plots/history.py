"""Training-history curves (loss, accuracy, learning rate) from logged metrics.

:func:`read_history` turns the CSV logger's ``metrics.csv`` rows into one record
per trained epoch; the run's own plots and the sweep and compare pages (which
overlay several runs, :func:`plot_runs_metric`) draw from it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Logged metric -> (plot, legend label). Missing metrics are simply not drawn.
CURVES: dict[str, tuple[str, str]] = {
    "train/loss": ("loss", "train"),
    "val/loss": ("loss", "val"),
    "train/acc_top1": ("accuracy", "train top-1"),
    "train/acc_top5": ("accuracy", "train top-5"),
    "val/acc_top1": ("accuracy", "val top-1"),
    "val/acc_top5": ("accuracy", "val top-5"),
}
LR_PREFIX = "lr-"  # LearningRateMonitor's column names: lr-AdamW, lr-SGD, ...
# More runs than colours in the default cycle: the line style changes too.
_LINE_STYLES = ("-", "--", ":", "-.")
_COLOURS = 10


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def read_history(
    rows: Iterable[Mapping[str, str]],
) -> tuple[list[dict[str, float]], list[tuple[float, float]]]:
    """Per-epoch metrics and learning-rate points from ``metrics.csv`` rows.

    Args:
        rows: The CSV rows (``csv.DictReader``): ``epoch``, ``step`` and a
            column per logged metric, empty where a row lacks it.

    Returns:
        One dict per trained epoch (``epoch`` and the :data:`CURVES` metrics
        logged in it, the last value winning) in epoch order, and
        ``(optimizer step, lr)`` points of the first learning-rate column.
    """
    epochs: dict[float, dict[str, float]] = {}
    lr_points: list[tuple[float, float]] = []
    lr_column: str | None = None
    for row in rows:
        # LearningRateMonitor logs its own rows, with a step but no epoch.
        if lr_column is None:
            lr_column = next((k for k in row if k.startswith(LR_PREFIX)), None)
        lr = _number(row.get(lr_column)) if lr_column else None
        step = _number(row.get("step"))
        if lr is not None and step is not None:
            lr_points.append((step, lr))
        epoch = _number(row.get("epoch"))
        if epoch is None:
            continue
        record = epochs.setdefault(epoch, {"epoch": epoch})
        for key in CURVES:
            value = _number(row.get(key))
            if value is not None:
                record[key] = value
    # Rows of trainer.validate()/test() after fit carry the next epoch number but
    # no training metric: they are evaluations, not epochs.
    trained = [
        epochs[e]
        for e in sorted(epochs)
        if any(k.startswith("train/") for k in epochs[e])
    ]
    return trained, lr_points


def read_history_file(path: Path) -> list[dict[str, float]]:
    """The per-epoch records of a ``metrics.csv`` (empty when it is missing).

    Args:
        path: The CSV logger's file.

    Returns:
        :func:`read_history`'s epochs.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return read_history(csv.DictReader(handle))[0]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


def plot_metric_curves(
    epochs: Sequence[Mapping[str, float]], plot: str, ylabel: str
) -> Figure:
    """One line per logged metric of ``plot`` (``loss`` or ``accuracy``) by epoch.

    Args:
        epochs: One mapping per epoch: ``epoch`` and the metrics of :data:`CURVES`
            that were logged in it.
        plot: Which group of :data:`CURVES` to draw.
        ylabel: Y axis label.

    Returns:
        The figure (not saved).
    """
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    drawn = False
    for key, (target, label) in CURVES.items():
        points = [(r["epoch"], r[key]) for r in epochs if key in r]
        if target != plot or not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
        drawn = True
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if plot == "accuracy":
        ax.set_ylim(0, 1.0)
    if drawn:
        ax.legend(fontsize=8)
    ax.set_title(f"{ylabel} per epoch")
    figure.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
    return figure


def plot_learning_rate(points: Sequence[tuple[float, float]]) -> Figure:
    """The learning rate against the optimizer step.

    Args:
        points: ``(optimizer step, learning rate)`` pairs.

    Returns:
        The figure (not saved).
    """
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o" if len(points) < 60 else None, markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate")
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    figure.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.12)
    return figure


def plot_runs_metric(
    runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]],
    key: str,
    title: str,
) -> Figure:
    """One line per run of one logged metric by epoch (the sweep and compare pages).

    Args:
        runs: ``(label, epochs)`` per run, epochs as :func:`read_history` gives.
        key: The metric (a :data:`CURVES` key, e.g. ``val/acc_top1``).
        title: Plot title and Y label.

    Returns:
        The figure (not saved); runs without the metric are left out.
    """
    figure = Figure(figsize=(7, 4.2))
    ax = figure.add_subplot()
    drawn = 0
    for label, epochs in runs:
        points = [(r["epoch"], r[key]) for r in epochs if key in r]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = _LINE_STYLES[(drawn // _COLOURS) % len(_LINE_STYLES)]
        ax.plot(xs, ys, style, marker="o", markersize=3, label=label)
        drawn += 1
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(title)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if "acc" in key:
        ax.set_ylim(0, 1.0)
    if drawn:
        ax.legend(fontsize=7, loc="best", ncol=2 if drawn > 8 else 1)
    figure.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12)
    return figure
