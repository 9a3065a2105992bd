"""Per-class top-1 against the class's train count: are the rare classes failing?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure


def plot_accuracy_by_train_count(
    panels: Mapping[str, npt.NDArray[Any]],
    train_counts: Sequence[int],
    class_names: Sequence[str],
    rare: Sequence[int],
) -> Figure:
    """One panel per split: each class's top-1 against its train rows (log x).

    The rarest classes (those ``top1_rare`` scores) are drawn in red; classes
    without rows in a split are left out of its panel. Up to 40 classes are
    named beside their point.

    Args:
        panels: Split name to per-class top-1 (NaN: no rows), by class index.
        train_counts: Train rows per class.
        class_names: Display names by class index.
        rare: Indices of the rare classes.

    Returns:
        The figure (not saved).
    """
    count = max(1, len(panels))
    figure = Figure(figsize=(4.8 * count, 4.2))
    counts = np.asarray(train_counts, dtype=np.float64)
    is_rare = np.zeros(len(counts), dtype=bool)
    is_rare[list(rare)] = True
    for position, (split, accuracy) in enumerate(panels.items(), start=1):
        ax = figure.add_subplot(1, count, position)
        present = ~np.isnan(accuracy)
        for mask, color, label in (
            (present & ~is_rare, "#1f77b4", "other classes"),
            (present & is_rare, "#d62728", "rarest third"),
        ):
            ax.scatter(counts[mask], accuracy[mask], s=18, color=color, label=label)
        if len(counts) <= 40:
            for i in np.flatnonzero(present):
                ax.annotate(
                    class_names[i], (counts[i], accuracy[i]), fontsize=6,
                    xytext=(2, 2), textcoords="offset points",
                )  # fmt: skip
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("train rows of the class (log)")
        ax.set_ylabel("top-1 of the class")
        ax.set_title(f"{split}: {int(present.sum())} classes")
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(alpha=0.3)
    figure.suptitle("per-class top-1 against train count")
    figure.subplots_adjust(left=0.09, right=0.98, top=0.86, bottom=0.13, wspace=0.25)
    return figure
