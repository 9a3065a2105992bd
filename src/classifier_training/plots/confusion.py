"""Confusion matrix figure and most-confused pairs (training and evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure

from classifier_training.core.readers import natural_order, shown_name

# "Blues" without its near-white end: a single mistake must stay visible.
COUNTS_CMAP = ListedColormap(colormaps["Blues"](np.linspace(0.3, 1.0, 256)))


def top_confusions(
    matrix: npt.NDArray[np.int64], names: Sequence[str], limit: int = 20
) -> list[dict[str, Any]]:
    """The most frequent mistakes (off-diagonal cells), largest first.

    Equal counts keep matrix order: lower true class first, then lower predicted
    class, so the list is the same on every run.

    Args:
        matrix: ``K x K`` counts, rows = true class.
        names: Display names in class-index order (drawn in natural order:
            numbers by value, the empty label first as ``(none)``).
        limit: At most this many pairs.

    Returns:
        ``[{"true", "predicted", "count", "share_of_true"}, ...]``; the share is
        the pair's count over the true class's rows (4 decimals).
    """
    off = matrix.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:limit]
    support = matrix.sum(axis=1)
    pairs = []
    for index in flat:
        true, pred = divmod(int(index), matrix.shape[1])
        count = int(off[true, pred])
        if count == 0:
            break
        pairs.append(
            {
                "true": names[true],
                "predicted": names[pred],
                "count": count,
                "share_of_true": round(count / max(int(support[true]), 1), 4),
            }
        )
    return pairs


def _layout(num_classes: int) -> tuple[float, float, bool]:
    """Cell size (inches), tick font size (points) and whether to annotate cells.

    Cells shrink with the class count but never below what a 5 pt label needs, so
    100+ classes stay readable when the PNG is zoomed.
    """
    cell = float(np.clip(6.0 / max(num_classes, 1), 0.12, 0.5))
    font = float(np.clip(cell * 60, 5.0, 10.0))
    return cell, font, num_classes <= 30


def _label_cells(
    ax: Axes, columns: Sequence[str], rows: Sequence[str] | None, font: float
) -> None:
    """Class names along the axes as plain text, without matplotlib ticks.

    Hundreds of tick objects cost more to build and lay out than the rest of the
    figure; plain text at fixed offsets looks the same and is several times
    cheaper.
    """
    ax.set_xticks([])
    ax.set_yticks([])
    below = ax.get_xaxis_transform()  # x: data, y: axes fraction
    for j, name in enumerate(columns):
        ax.text(
            j,
            -0.005,
            name,
            rotation=90,
            ha="center",
            va="top",
            fontsize=font,
            transform=below,
            clip_on=False,
        )
    if rows is not None:
        left = ax.get_yaxis_transform()  # x: axes fraction, y: data
        for i, name in enumerate(rows):
            ax.text(
                -0.005,
                i,
                name,
                ha="right",
                va="center",
                fontsize=font,
                transform=left,
                clip_on=False,
            )


def plot_confusion_matrix(
    matrix: npt.NDArray[np.int64], names: Sequence[str], title: str
) -> Figure:
    """Two heat maps side by side: counts (log colour scale) and row-normalised.

    With up to 30 classes every non-zero cell is annotated; with more, the
    support of each true class is shown in its row label instead. The geometry is
    computed, not solved by a layout engine: with 100+ classes the engine would
    cost more than the drawing.

    Args:
        matrix: ``K x K`` counts, rows = true class, columns = predicted class.
        names: Display names in class-index order (drawn in natural order:
            numbers by value, the empty label first as ``(none)``).
        title: Figure title (e.g. the epoch and accuracy).

    Returns:
        The figure (not saved).
    """
    order = natural_order(names)  # rows and columns as people read the names
    names = [shown_name(names[i]) for i in order]
    matrix = np.asarray(matrix)[np.ix_(order, order)]
    k = len(names)
    cell, font, annotate = _layout(k)
    counts = matrix.astype(np.float64)
    support = counts.sum(axis=1)
    normalised = np.divide(
        counts, support[:, None], out=np.zeros_like(counts), where=support[:, None] > 0
    )
    row_labels = (
        list(names)
        if annotate
        else [f"{n} ({int(s)})" for n, s in zip(names, support, strict=True)]
    )
    # Inches: room for the longest tick label, panel side, colour bar, titles.
    char = font / 72 * 0.62
    y_room = char * max(len(n) for n in row_labels) + 0.55
    x_room = char * max(len(n) for n in names) + 0.5
    side = max(k * cell, 1.6)
    bar, bar_room, top = 0.12, 0.55, 0.75
    width = y_room + side + 0.08 + bar + bar_room + 0.25 + side + 0.08 + bar + bar_room
    height = x_room + side + top
    figure = Figure(figsize=(width, height))
    label_size = max(font, 8.0)

    def box(left: float, w: float) -> tuple[float, float, float, float]:
        return (left / width, x_room / height, w / width, side / height)

    right_start = y_room + side + 0.08 + bar + bar_room + 0.25
    panels = (
        (y_room, "counts" + ("" if annotate else " (row label: support)"), counts),
        (right_start, "row-normalised (diagonal = recall)", normalised),
    )
    for index, (left, name, values) in enumerate(panels):
        is_counts = index == 0
        ax = figure.add_axes(box(left, side))
        cax = figure.add_axes(box(left + side + 0.08, bar))
        norm: Normalize
        shown = np.where(values > 0, values, np.nan)  # NaN cells stay white
        if is_counts:
            norm = LogNorm(vmin=1.0, vmax=max(float(values.max()), 1.0) + 1e-9)
        else:
            norm = Normalize(vmin=0.0, vmax=1.0)
        cmap = COUNTS_CMAP if is_counts else "magma_r"
        image = ax.imshow(
            shown, cmap=cmap, norm=norm, interpolation="nearest", aspect="auto"
        )
        figure.colorbar(image, cax=cax)
        cax.tick_params(labelsize=label_size * 0.8)
        ax.set_title(name, fontsize=label_size)
        _label_cells(ax, names, row_labels if is_counts else None, font)
        ax.text(
            0.5,
            -(x_room - 0.3) / side,
            "predicted",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=label_size,
        )
        if is_counts:
            ax.text(
                -(y_room - 0.3) / side,
                0.5,
                "true",
                transform=ax.transAxes,
                ha="center",
                va="center",
                rotation=90,
                fontsize=label_size,
            )
        if annotate:
            high = float(values.max()) / 2
            for (i, j), value in np.ndenumerate(values):
                if value > 0:
                    ax.text(
                        j,
                        i,
                        f"{int(value)}" if is_counts else f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=font * 0.8,
                        color="white" if value > high else "black",
                    )
    figure.suptitle(title, fontsize=label_size + 1, y=1 - 0.15 / height)
    return figure
