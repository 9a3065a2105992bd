"""Dataset statistics: class-count bars and Rich summary tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from classifier_training.core.readers import natural_order, shown_name

#: Classes per row of the class-balance chart: 1,000 classes make ten rows, each
#: as wide as 100 classes need to stay readable.
CLASSES_PER_ROW = 100


def plot_class_counts(stats: Mapping[str, Any]) -> Figure:
    """Bar chart of rows per class, one bar group per split (wider with more classes).

    Args:
        stats: Output of :func:`dataset_statistics`.

    Returns:
        The figure.
    """
    names: list[str] = stats["class_names"]
    splits = list(stats["splits"])
    k = len(names)
    order = natural_order(names)
    rows = [order[i : i + CLASSES_PER_ROW] for i in range(0, k, CLASSES_PER_ROW)]
    per_row = len(rows[0]) if rows else 0
    width = float(np.clip(0.16 * per_row * max(len(splits), 1) / 2 + 2.5, 6.0, 40.0))
    font = 8.0 if per_row <= 40 else 6.0
    figure = Figure(figsize=(width, 4.2 * max(len(rows), 1)))
    bar = 0.8 / max(len(splits), 1)
    ratio = stats.get("imbalance_ratio")
    for row, indices in enumerate(rows):
        ax = figure.add_subplot(len(rows), 1, row + 1)
        positions = np.arange(len(indices))
        for i, split in enumerate(splits):
            class_counts = stats["splits"][split]["class_counts"]
            counts = [class_counts[names[c]] for c in indices]
            offset = (i - (len(splits) - 1) / 2) * bar
            ax.bar(positions + offset, counts, bar, label=split)
        ax.set_xticks(
            positions, [shown_name(names[c]) for c in indices], rotation=90,
            fontsize=font,
        )  # fmt: skip
        ax.set_xlim(-0.6, per_row - 0.4)
        ax.set_ylabel("rows")
        ax.grid(axis="y", alpha=0.3)
        if row == 0:
            ax.set_title(
                f"rows per class ({k} classes"
                + (f", train imbalance {ratio:.1f}x" if ratio else "")
                + ")"
            )
            ax.legend(fontsize=8)
    height = 4.2 * max(len(rows), 1)
    figure.subplots_adjust(
        left=0.5 / width + 0.03,
        right=0.99,
        top=1 - 0.42 / height,
        bottom=1.05 / height,
        hspace=0.5,
    )
    return figure


def print_statistics(stats: Mapping[str, Any]) -> None:
    """Print a per-split summary, exclusions and metadata fields as Rich tables."""
    table = Table(title=f"Dataset ({stats['num_classes']} classes)")
    # Per-class counts: min, median, max; imbalance = max / min.
    for column in (
        "split",
        "rows",
        "classes",
        "min",
        "median",
        "max",
        "imbalance",
        "excluded",
    ):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, row in stats["splits"].items():
        excluded = stats["excluded_rows"].get(split, {}).get("count", 0)
        table.add_row(
            split,
            str(row["rows"]),
            str(row["classes_present"]),
            str(row["min_per_class"]),
            f"{row['median_per_class']:g}",
            str(row["max_per_class"]),
            f"{row['imbalance_ratio']:.2f}x" if row["imbalance_ratio"] else "-",
            str(excluded),
        )
    console = Console()
    console.print(table)
    fields = stats["splits"].get("train", {}).get("metadata", {}).get("fields", {})
    if fields:
        meta = Table(title="Train metadata")
        meta.add_column("field")
        meta.add_column("kind")
        meta.add_column("summary")
        for key, info in fields.items():
            if info["kind"] == "categorical":
                top = ", ".join(
                    f"{v}: {n}" for v, n in list(info["counts"].items())[:4]
                )
                summary = f"{info['distinct']} values; {top}"
            elif info["kind"] == "numeric":
                summary = f"{info['min']:g} .. {info['max']:g}, mean {info['mean']:.3g}"
            else:
                summary = f"{info['rows']} rows"
            meta.add_row(key, info["kind"], summary)
        console.print(meta)
