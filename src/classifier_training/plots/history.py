"""Training-history curves (loss, accuracy, learning rate) from logged metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

# Logged metric -> (plot, legend label). Missing metrics are simply not drawn.
CURVES: dict[str, tuple[str, str]] = {
    "train/loss": ("loss", "train"),
    "val/loss": ("loss", "val"),
    "train/acc_top1": ("accuracy", "train top-1"),
    "train/acc_top5": ("accuracy", "train top-5"),
    "val/acc_top1": ("accuracy", "val top-1"),
    "val/acc_top5": ("accuracy", "val top-5"),
}


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
