"""Dataset statistics at fit start: class counts, imbalance, exclusions, metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from classifier_training.callbacks._common import (
    get_datamodule,
    save_figure,
    should_write,
)
from classifier_training.data.readers import display_name
from classifier_training.utils.io import atomic_write_json

JSON_NAME = "dataset_stats.json"
PNG_NAME = "dataset_stats.png"
MAX_CATEGORIES = 30  # more distinct values than this: summarise numbers, cut text


def summarize_values(values: list[Any]) -> dict[str, Any]:
    """Distribution of one metadata field.

    Numbers with more than ``MAX_CATEGORIES`` distinct values get min/max/mean,
    quantiles and a 10-bin histogram; anything else gets value counts (the most
    common ``MAX_CATEGORIES``, the rest summed as ``"<other>"``). Lists and
    objects are counted but not broken down.

    Args:
        values: The field's value in every row that has it.

    Returns:
        ``{"rows": n, "kind": "categorical"|"numeric"|"nested", ...}``.
    """
    nested = [v for v in values if isinstance(v, dict | list)]
    if nested:
        return {"rows": len(values), "kind": "nested"}
    numeric = [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    distinct = {repr(v) for v in values}
    if len(numeric) == len(values) and len(distinct) > MAX_CATEGORIES:
        array = np.asarray(numeric)
        counts, edges = np.histogram(array, bins=10)
        return {
            "rows": len(values),
            "kind": "numeric",
            "min": float(array.min()),
            "max": float(array.max()),
            "mean": float(array.mean()),
            "quantiles": {
                q: float(np.quantile(array, float(q))) for q in ("0.05", "0.5", "0.95")
            },
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        }
    counter = Counter("null" if v is None else str(v) for v in values)
    common = counter.most_common(MAX_CATEGORIES)
    rest = sum(counter.values()) - sum(n for _, n in common)
    counts_out = dict(common)
    if rest:
        counts_out["<other>"] = rest
    return {
        "rows": len(values),
        "kind": "categorical",
        "distinct": len(counter),
        "counts": counts_out,
    }


def metadata_distributions(rows: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per-field distributions of the rows' ``metadata`` (empty when there is none).

    Args:
        rows: Each row's metadata mapping (or ``None``).

    Returns:
        Field name to :func:`summarize_values` output, plus ``rows_with_metadata``.
    """
    fields: dict[str, list[Any]] = {}
    with_metadata = 0
    for metadata in rows:
        if not metadata:
            continue
        with_metadata += 1
        for key, value in metadata.items():
            fields.setdefault(str(key), []).append(value)
    if not with_metadata:
        return {}
    return {
        "rows_with_metadata": with_metadata,
        "fields": {key: summarize_values(v) for key, v in sorted(fields.items())},
    }


def dataset_statistics(datamodule: Any) -> dict[str, Any]:
    """Class counts per split, imbalance, excluded rows and metadata distributions.

    Args:
        datamodule: A set-up ``ImageFolderDataModule``.

    Returns:
        The JSON-serialisable statistics.
    """
    names = [display_name(n) for n in datamodule.class_names]
    splits: dict[str, Any] = {}
    for split, dataset in datamodule.datasets.items():
        counts = np.bincount(
            np.asarray(dataset.targets, dtype=np.int64), minlength=len(names)
        )
        present = counts[counts > 0]
        splits[split] = {
            "rows": int(counts.sum()),
            "classes_present": len(present),
            "min_per_class": int(present.min()) if len(present) else 0,
            "median_per_class": float(np.median(present)) if len(present) else 0.0,
            "max_per_class": int(present.max()) if len(present) else 0,
            "imbalance_ratio": round(float(present.max() / present.min()), 3)
            if len(present)
            else None,
            "missing_classes": [
                n for n, c in zip(names, counts, strict=True) if c == 0
            ],
            "class_counts": {n: int(c) for n, c in zip(names, counts, strict=True)},
            "metadata": metadata_distributions(s.metadata for s in dataset.samples),
        }
    excluded = {
        split: {"count": rows.count, "labels": dict(rows.labels)}
        for split, rows in datamodule.excluded.items()
    }
    train = splits.get("train", {})
    return {
        "num_classes": len(names),
        "class_names": names,
        "imbalance_ratio": train.get("imbalance_ratio"),
        "splits": splits,
        "excluded_rows": excluded,
    }


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
    width = float(np.clip(0.16 * k * max(len(splits), 1) / 2 + 2.5, 6.0, 40.0))
    font = 8.0 if k <= 40 else 6.0
    figure = Figure(figsize=(width, 4.2))
    ax = figure.add_subplot()
    bar = 0.8 / max(len(splits), 1)
    positions = np.arange(k)
    for i, split in enumerate(splits):
        counts = [stats["splits"][split]["class_counts"][n] for n in names]
        ax.bar(positions + (i - (len(splits) - 1) / 2) * bar, counts, bar, label=split)
    ax.set_xticks(positions, names, rotation=90, fontsize=font)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylabel("rows")
    ratio = stats.get("imbalance_ratio")
    ax.set_title(
        f"rows per class ({k} classes"
        + (f", train imbalance {ratio:.1f}x" if ratio else "")
        + ")"
    )
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    figure.subplots_adjust(left=0.5 / width + 0.03, right=0.99, top=0.9, bottom=0.25)
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


class DatasetStatisticsCallback(Callback):
    """At fit start, write ``dataset_stats.json`` and ``dataset_stats.png``.

    Class counts per split, train imbalance ratio (largest / smallest class),
    rows excluded from valid/test (labels unknown to train), and distributions
    of per-row ``metadata`` fields when rows carry them; printed as tables.

    Args:
        output_dir: The run folder.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.stats: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute, print and write the statistics."""
        if not should_write(trainer):
            return
        datamodule = get_datamodule(trainer, type(self).__name__)
        self.stats = dataset_statistics(datamodule)
        atomic_write_json(self.output_dir / JSON_NAME, self.stats)
        save_figure(plot_class_counts(self.stats), self.output_dir / PNG_NAME)
        print_statistics(self.stats)
