"""Dataset statistics at fit start: class counts, imbalance, exclusions, metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import Callback

from classifier_training.callbacks._common import (
    display_names,
    should_write,
    training_data,
)
from classifier_training.core.io import atomic_write_json
from classifier_training.core.run_files import DATASET_STATS_JSON, DATASET_STATS_PNG
from classifier_training.plots import plot_class_counts, print_statistics, save_figure
from classifier_training.types import TrainingData

SPLITS = ("train", "val", "test")
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


def dataset_statistics(data: TrainingData) -> dict[str, Any]:
    """Class counts per split, imbalance, excluded rows and metadata distributions.

    Args:
        data: A set-up data module (e.g. ``ImageFolderDataModule``).

    Returns:
        The JSON-serialisable statistics.
    """
    names = display_names(data)
    class_to_idx = data.contract.class_to_idx
    splits: dict[str, Any] = {}
    for split in SPLITS:
        samples = data.split_samples(split)
        if not samples:
            continue
        targets = [class_to_idx[s.label] for s in samples]
        counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=len(names))
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
            "metadata": metadata_distributions(s.metadata for s in samples),
        }
    excluded = {
        split: {"count": rows.count, "labels": dict(rows.labels)}
        for split, rows in data.excluded.items()
    }
    train = splits.get("train", {})
    return {
        "num_classes": len(names),
        "class_names": names,
        "imbalance_ratio": train.get("imbalance_ratio"),
        "splits": splits,
        "excluded_rows": excluded,
    }


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

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute, print and write the statistics."""
        if not should_write(trainer):
            return
        stats = dataset_statistics(training_data(trainer, type(self).__name__))
        atomic_write_json(self.output_dir / DATASET_STATS_JSON, stats)
        save_figure(plot_class_counts(stats), self.output_dir / DATASET_STATS_PNG)
        print_statistics(stats)
