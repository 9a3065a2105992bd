"""``metrics.json``: assembled from the run's numbers, published, summarised.

The file holds per split (``val``, ``test``) the best weights' accuracy, loss
and per-class numbers, the calibration, what the data left out, the batch, the
best checkpoint, epochs and wall time. Rank 0 writes it with ``report.html`` and
sends the final numbers to the trackers; the console gets a short table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger
from rich.console import Console
from rich.table import Table

from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import SPLITS
from classifier_training.core.run_files import METRICS_FILE
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.report import build_run_report
from classifier_training.utils.loggers import (
    finish_trackers,
    log_deployment,
    log_final_metrics,
)

#: The splits the best weights are scored on, in ``metrics.json``'s order.
EVAL_SPLITS = tuple(split for split in SPLITS if split != "train")


def split_metrics(results: Mapping[str, float], stage: str) -> dict[str, Any]:
    """Nest flat ``stage/...`` metrics: top-k, loss and per-class accuracy by name."""
    summary: dict[str, Any] = {}
    per_class: dict[str, float] = {}
    for key, value in sorted(results.items()):
        name = key.removeprefix(f"{stage}/")
        if name.startswith("acc_class/"):
            per_class[name.removeprefix("acc_class/")] = float(value)
        elif key.startswith(f"{stage}/"):
            summary[name] = float(value)
    summary["per_class_acc"] = per_class
    return summary


def add_post_fit(metrics: dict[str, Any], post_fit: dict[str, Any]) -> None:
    """Put the post-fit step's numbers into ``metrics`` (in place).

    Each split's entry gets its per-class precision/recall/F1/support, most
    confident mistakes and ``top1_rare`` (top-1 on the rarest third of the
    classes by train count) beside its accuracy; ``metrics["long_tail"]`` names
    those classes and the per-class top-1 against train count figure;
    ``metrics["calibration"]`` gets the rest (temperature, ECE/NLL and
    risk-coverage per split, the diagram).
    """
    long_tail = post_fit.pop("long_tail", {})
    for split in EVAL_SPLITS:
        if split in metrics and split in post_fit:
            for key in ("per_class", "confident_mistakes"):
                metrics[split][key] = post_fit[split].pop(key)
        if split in metrics and split in long_tail.get("top1_rare", {}):
            metrics[split]["top1_rare"] = long_tail["top1_rare"][split]
    if long_tail:
        metrics["long_tail"] = {
            "rare_classes": long_tail["rare_classes"],
            "figure": long_tail["figure"],
        }
    metrics["calibration"] = post_fit


def run_facts(
    trainer: L.Trainer,
    datamodule: ImageFolderDataModule,
    batch: dict[str, int],
    best: str | None,
    started: float,
) -> dict[str, Any]:
    """What ``metrics.json`` records beside the scores.

    Args:
        trainer: The trainer after fitting.
        datamodule: The run's data module.
        batch: The effective batch and what it is made of.
        best: The best checkpoint, if one was saved.
        started: ``time.perf_counter()`` when the run started.

    Returns:
        Excluded rows, skipped images, classes and rows per split, the batch,
        the best checkpoint, epochs completed and wall time (seconds).
    """
    data = datamodule.summary()
    return {
        "excluded_rows": data["excluded_rows"],
        "skipped_images": data["skipped_images"],
        "data": {"num_classes": data["num_classes"], "splits": data["splits"]},
        "batch": batch,
        "best_checkpoint": str(best) if best else None,
        "epochs_completed": trainer.current_epoch,
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


def calibration_numbers(calibration: Mapping[str, Any]) -> dict[str, float]:
    """The calibration scalars for the trackers (``calibration/...``)."""
    numbers = {"calibration/temperature": float(calibration["temperature"])}
    for split in EVAL_SPLITS:
        for key in ("ece_before", "ece_after"):
            if split in calibration:
                numbers[f"calibration/{split}_{key}"] = float(calibration[split][key])
    return numbers


def publish_results(
    metrics: dict[str, Any], output_dir: Path, loggers: Sequence[Logger]
) -> None:
    """Write ``metrics.json`` and ``report.html``; finish the trackers (rank 0).

    The trackers get the calibration numbers and, for W&B, the deployment as a
    model artifact, then are closed.
    """
    atomic_write_json(output_dir / METRICS_FILE, metrics)
    build_run_report(output_dir)  # report.html: everything above on one page
    log_final_metrics(loggers, calibration_numbers(metrics["calibration"]))
    log_deployment(loggers, output_dir)
    finish_trackers(loggers)


def print_summary(metrics: Mapping[str, Any], output_dir: Path) -> None:
    """Print the final numbers as a Rich table."""
    table = Table(title="Results of the best checkpoint")
    table.add_column("split")
    # Top-5 of five classes or fewer is always 100 %: left out.
    num_classes = (metrics.get("data") or {}).get("num_classes") or 0
    columns = (
        ("acc_top1", "acc_top5", "loss") if num_classes > 5 else ("acc_top1", "loss")
    )
    for column in columns:
        table.add_column(column, justify="right")
    for split in EVAL_SPLITS:
        if split in metrics:
            row = metrics[split]
            table.add_row(split, *(f"{row.get(c, float('nan')):.4f}" for c in columns))
    Console().print(table)
    degenerate = (metrics.get("calibration") or {}).get("degenerate")
    if degenerate:
        print(f"warning: calibration is degenerate: {degenerate}; temperature 1.0")
    if "test" in metrics:
        print(f"test top-1: {100 * metrics['test']['acc_top1']:.2f}%")
    print(f"run folder: {output_dir}")
