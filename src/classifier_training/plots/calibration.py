"""Reliability diagrams: stated confidence against observed accuracy."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from classifier_training.core.calibration import Reliability


def plot_reliability(
    panels: Mapping[str, tuple[Reliability, Reliability]], temperature: float
) -> Figure:
    """One panel per split: accuracy per confidence bin, before and after scaling.

    Each confidence bin is a point (mean confidence, accuracy); a calibrated
    model's points sit on the diagonal, points below it are over-confident. The
    share of rows per bin is drawn as a grey histogram at the bottom.

    Args:
        panels: Split name to ``(before, after)`` reliability statistics.
        temperature: The fitted temperature (for the title).

    Returns:
        The figure (not saved).
    """
    count = max(1, len(panels))
    figure = Figure(figsize=(4.6 * count, 4.4))
    for position, (split, (before, after)) in enumerate(panels.items(), start=1):
        ax = figure.add_subplot(1, count, position)
        edges = after.edges
        width = float(edges[1] - edges[0])
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
        # Each filled bin is a point (mean confidence, accuracy): on the
        # diagonal = calibrated, below = over-confident, above = under-confident.
        for stats, label, color, marker in (
            (before, f"T=1 (ECE {before.ece:.3f})", "#d62728", "s"),
            (after, f"T={temperature:.2f} (ECE {after.ece:.3f})", "#1f77b4", "o"),
        ):
            filled = stats.counts > 0
            ax.plot(
                stats.confidence[filled],
                stats.accuracy[filled],
                marker=marker,
                markersize=5,
                linewidth=1.5,
                color=color,
                label=label,
            )
        total = max(1, int(after.counts.sum()))
        ax.bar(
            centres,
            after.counts / total * 0.25,
            width=width * 0.9,
            color="0.3",
            alpha=0.5,
            label="share of rows (x0.25)",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{split}: {int(after.counts.sum())} rows")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    figure.suptitle("reliability: accuracy per confidence bin (diagonal = calibrated)")
    figure.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.12, wspace=0.25)
    return figure
