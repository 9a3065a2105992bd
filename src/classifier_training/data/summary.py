"""What the data module reports about its data (logs and ``metrics.json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from classifier_training.core.readers import ExcludedRows, display_name
from classifier_training.data.cache import ImageCache
from classifier_training.data.dataset import JerseyNumberDataset


def skipped_image_counts(
    policy: str,
    at_startup: Mapping[str, int],
    datasets: Mapping[str, JerseyNumberDataset],
) -> dict[str, Any]:
    """Rows left out or replaced because their image was unreadable.

    Args:
        policy: ``data.on_bad_image``.
        at_startup: Rows per split dropped before training (``skip``).
        datasets: The datasets, which count the rows replaced mid-run.

    Returns:
        ``{"policy", "total", "at_startup", "at_load"}`` (splits without
        skipped rows left out).
    """
    at_load = {
        split: ds.skipped_count for split, ds in datasets.items() if ds.skipped_count
    }
    return {
        "policy": policy,
        "total": sum(at_startup.values()) + sum(at_load.values()),
        "at_startup": {k: v for k, v in at_startup.items() if v},
        "at_load": at_load,
    }


def data_summary(
    class_names: Sequence[str],
    datasets: Mapping[str, JerseyNumberDataset],
    layouts: Mapping[str, str],
    excluded: Mapping[str, ExcludedRows],
    caches: Mapping[str, ImageCache],
    skipped: dict[str, Any],
) -> dict[str, Any]:
    """Rows, classes, exclusions, skipped images and caches per split.

    Args:
        class_names: Class names by index.
        datasets: The datasets per split.
        layouts: ``jsonl`` or ``folder`` per split.
        excluded: Valid/test rows left out for labels train lacks.
        caches: The image caches per split.
        skipped: :func:`skipped_image_counts`' record.

    Returns:
        The summary (plain JSON values).
    """
    train_counts = datasets["train"].class_counts()
    return {
        "num_classes": len(class_names),
        "splits": {
            split: {
                "rows": len(ds),
                "layout": layouts[split],
                "classes_present": len(set(ds.targets)),
            }
            for split, ds in datasets.items()
        },
        "excluded_rows": {
            split: {"count": ex.count, "labels": ex.labels}
            for split, ex in excluded.items()
        },
        "skipped_images": skipped,
        "cache": {
            split: {"kind": c.kind, "images": len(c), "bytes": c.nbytes}
            for split, c in caches.items()
        },
        "class_counts": {
            display_name(name): train_counts[index]
            for index, name in enumerate(class_names)
        },
    }
