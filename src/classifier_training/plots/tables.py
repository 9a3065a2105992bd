"""Rich tables printed by training and by ``classifier-evaluate``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def print_model_table(info: Mapping[str, Any]) -> None:
    """Show the main numbers as a Rich table."""
    table = Table(title="Model")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("architecture", str(info["arch"]))
    table.add_row("classes", str(info["num_classes"]))
    table.add_row("parameters", f"{info['params_total']:,}")
    table.add_row("trainable", f"{info['params_trainable']:,}")
    table.add_row("size", f"{info['size_mb']:.2f} MB")
    size = info["image_size"]
    table.add_row(f"GFLOPs @ {size}x{size}", f"{info['gflops']:.3f}")
    table.add_row("GMACs", f"{info['gmacs']:.3f}")
    Console().print(table)


def print_evaluation(summary: Mapping[str, Any], top_k: int, console: Console) -> None:
    """Print the per-class table, the overall numbers and the confused pairs."""
    table = Table(title=f"{summary['split']}: {summary['num_rows']} rows")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in summary["per_class"].items():
        table.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    macro = summary["macro"]
    table.add_section()
    table.add_row(
        "macro", f"{macro['precision']:.3f}", f"{macro['recall']:.3f}",
        f"{macro['f1']:.3f}", str(summary["num_rows"]),
    )  # fmt: skip
    console.print(table)
    if summary["most_confused"]:
        pairs = Table(title="most confused (true -> predicted)")
        for column in ("true", "predicted", "rows", "share of true"):
            pairs.add_column(column)
        for pair in summary["most_confused"]:
            pairs.add_row(
                pair["true"],
                pair["predicted"],
                str(pair["count"]),
                f"{100 * pair['share_of_true']:.1f}%",
            )
        console.print(pairs)
    coverage = summary.get("risk_coverage") or []
    if coverage:
        risk = Table(title="risk-coverage (refuse below a calibrated confidence)")
        for column in ("min confidence", "coverage", "answered", "accuracy"):
            risk.add_column(column, justify="right")
        for row in coverage:
            risk.add_row(
                f"{row['threshold']:.2f}",
                f"{100 * row['coverage']:.1f}%",
                str(row["kept"]),
                f"{100 * row['accuracy']:.2f}%" if row["kept"] else "-",
            )
        console.print(risk)
    calibration = summary.get("calibration") or {}
    if "temperature" in calibration:
        console.print(
            f"temperature {calibration['temperature']:.3f}  ECE "
            f"{calibration['ece_uncalibrated']:.4f} (T=1) -> "
            f"{calibration['ece']:.4f} (calibrated)"
        )
    console.print(
        f"top-1 {100 * summary['top1']:.2f}%  top-{top_k} "
        f"{100 * summary['top5']:.2f}%  excluded rows "
        f"{summary['excluded_rows']['count']}"
    )
    tracks = summary.get("tracks")
    if tracks:
        console.print(
            f"track top-1 {100 * tracks['top1']:.2f}% over {tracks['num_tracks']} "
            f"tracks (metadata.{tracks['key']}, {tracks['rule']}); frame top-1 "
            f"{100 * tracks['frame_top1']:.2f}%"
        )
