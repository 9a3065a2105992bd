"""``report.html`` of a training run, built from the files the run wrote.

Only files are read (``metrics.json``, ``.hydra/``, ``dataset_stats.json``,
``model_info.json``, the PNGs), so ``classifier-report RUN_DIR`` rebuilds the
page of any finished run, and the page of a run that lacks a file (a callback
switched off) says so in the section instead of failing.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from classifier_training.core import run_files as rf
from classifier_training.core.errors import ClassifierError
from classifier_training.core.io import atomic_write_text
from classifier_training.report.html import (
    esc,
    figure,
    figures,
    fmt,
    page,
    pct,
    table,
)
from classifier_training.report.sections import (
    calibration_table,
    mistakes_table,
    per_class_table,
    risk_coverage_table,
    temperature_note,
)

#: Anchors of the run page's sections, in order (tests check them all).
RUN_SECTIONS = (
    "command",
    "metrics",
    "data",
    "per-class",
    "curves",
    "confusion",
    "mistakes",
    "augmentation",
    "calibration",
    "model",
    "deployment",
    "files",
)
#: Files the page links to (relative), when the run has them.
LINKED_FILES = (
    (rf.MODEL_ONNX, "ONNX model (raw logits)"),
    (rf.MODEL_INT8_ONNX, "int8 ONNX model (CPU; same contract)"),
    (rf.MODEL_FP16_ONNX, "fp16 ONNX model (GPU; same contract)"),
    (rf.EXPORT_SUMMARY_FILE, "exported precisions and their accuracy guard"),
    (
        rf.LABELS_MAPPING_FILE,
        "deployment contract: classes, preprocessing, temperature",
    ),
    (
        rf.checkpoint_file(rf.BEST_CHECKPOINT),
        "best checkpoint (EMA weights, carries the contract)",
    ),
    (rf.checkpoint_file(rf.LAST_CHECKPOINT), "last checkpoint (resume from it)"),
    (rf.METRICS_FILE, "final metrics"),
    (rf.METRICS_CSV_FILE, "per-epoch metrics"),
    (rf.DATASET_STATS_JSON, "dataset statistics"),
    (rf.MODEL_INFO_FILE, "model information"),
    (rf.TRAIN_LOG_FILE, "console log"),
    (rf.CONFIG_FILE, "composed config"),
)


class ReportError(ClassifierError):
    """A folder is not a run (or evaluation) folder a report can be built from."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path`` (empty when missing or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def command_line(run_dir: Path) -> str:
    """The run's command, rebuilt from Hydra's record (``.hydra/hydra.yaml``)."""
    try:
        record = yaml.safe_load((run_dir / rf.HYDRA_FILE).read_text())
        hydra = record["hydra"]
        overrides = list(hydra["overrides"]["task"])
        config_name = hydra["job"]["config_name"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return "(not recorded: no .hydra/hydra.yaml)"
    return shlex.join(["classifier-train", "--config-name", config_name, *overrides])


def _command_section(run_dir: Path) -> str:
    config = run_dir / rf.CONFIG_FILE
    text = config.read_text(encoding="utf-8") if config.is_file() else "(missing)"
    return (
        f"<pre>{esc(command_line(run_dir))}</pre>"
        f"<details><summary>composed config (.hydra/config.yaml)</summary>"
        f"<pre>{esc(text)}</pre></details>"
    )


def _metrics_section(metrics: dict[str, Any]) -> str:
    calibration = metrics.get("calibration") or {}
    rows = []
    for split in ("val", "test"):
        if split not in metrics:
            continue
        entry, cal = metrics[split], calibration.get(split) or {}
        rows.append(
            [
                split,
                pct(entry.get("acc_top1")),
                pct(entry.get("acc_top5")),
                fmt(entry.get("loss")),
                fmt(cal.get("ece_before")),
                fmt(cal.get("ece_after")),
            ]
        )
    header = ["split", "top-1", "top-5", "loss", "ECE T=1", "ECE calibrated"]
    facts = [
        ["epochs completed", fmt(metrics.get("epochs_completed"))],
        ["wall time", f"{fmt(metrics.get('wall_time_s'), 1)} s"],
        ["best checkpoint", str(metrics.get("best_checkpoint") or "-")],
    ]
    return (
        "<p class='note'>The best checkpoint (EMA weights) on each split.</p>"
        + _leakage_note((metrics.get("data") or {}).get("leakage", "absent"))
        + table(header, rows)
        + table(["", ""], facts)
    )


def _leakage_note(leakage: Any) -> str:
    """Say whether the accuracies below may be inflated by leaking splits."""
    if leakage == "absent":  # a run from before the check existed
        return ""
    if leakage is None:
        return "<p class='note'>Leakage across splits was not checked.</p>"
    found = []
    if leakage.get("near_duplicate_pairs"):
        found.append(
            f"{leakage['near_duplicate_pairs']} near-duplicate image pair(s) "
            "across splits"
        )
    if leakage.get("group_leaks"):
        found.append(
            f"{leakage['group_leaks']} {leakage.get('group_key')} group(s) in "
            "several splits"
        )
    if not found:
        return "<p class='note'>No leakage found across splits.</p>"
    return (
        "<p class='bad'>These accuracies may be inflated: "
        + esc(", ".join(found))
        + " (<code>classifier-check-data</code> lists them).</p>"
    )


def _data_section(run_dir: Path, metrics: dict[str, Any]) -> str:
    data = metrics.get("data") or {}
    stats = read_json(run_dir / rf.DATASET_STATS_JSON)
    excluded = metrics.get("excluded_rows") or {}
    rows = []
    for split, info in (data.get("splits") or {}).items():
        split_stats = (stats.get("splits") or {}).get(split) or {}
        rows.append(
            [
                split,
                fmt(info.get("rows")),
                fmt(info.get("classes_present")),
                str(info.get("layout", "-")),
                fmt((excluded.get(split) or {}).get("count", 0)),
                fmt(split_stats.get("min_per_class")),
                fmt(split_stats.get("max_per_class")),
                fmt(split_stats.get("imbalance_ratio"), 2),
            ]
        )
    header = [
        "split", "rows", "classes", "layout", "excluded rows",
        "min/class", "max/class", "imbalance (max/min)",
    ]  # fmt: skip
    skipped = metrics.get("skipped_images") or {}
    lines = [
        f"{fmt(data.get('num_classes'))} classes (from the train split).",
        f"Skipped images: {fmt(skipped.get('total', 0))} "
        f"(policy <code>{esc(skipped.get('policy', '-'))}</code>).",
    ]
    for split, info in excluded.items():
        if info.get("count"):
            labels = ", ".join(repr(k) for k in list(info.get("labels") or {})[:8])
            lines.append(
                f"{esc(split)}: {fmt(info['count'])} rows excluded, label not in "
                f"train ({esc(labels)})."
            )
    return (
        table(header, rows)
        + "".join(f"<p>{line}</p>" for line in lines)
        + figures(
            [
                (run_dir / rf.DATASET_STATS_PNG, "class balance per split"),
                (run_dir / rf.SAMPLER_PNG, "classes drawn by the sampler"),
            ]
        )
    )


def _per_class_section(metrics: dict[str, Any]) -> str:
    for split in ("test", "val"):
        entry = metrics.get(split) or {}
        if entry.get("per_class"):
            return f"<h3>{esc(split)}</h3>" + per_class_table(entry["per_class"])
        if entry.get("per_class_acc"):  # runs before per-class F1 was recorded
            recall = {
                name: {"precision": float("nan"), "recall": acc, "f1": acc,
                       "support": 0}
                for name, acc in entry["per_class_acc"].items()
            }  # fmt: skip
            return f"<h3>{esc(split)} (accuracy per class only)</h3>" + per_class_table(
                recall
            )
    return '<p class="note">no per-class scores in metrics.json.</p>'


def _last_epoch_dir(run_dir: Path) -> Path | None:
    epochs = sorted(run_dir.glob(rf.EPOCH_GLOB))
    return epochs[-1] if epochs else None


def _confusion_section(run_dir: Path) -> str:
    for split in ("test", "val"):
        path = run_dir / rf.eval_file(rf.CONFUSION_PNG, split)
        if path.is_file():
            return figure(path, f"{split} confusion matrix of the best checkpoint")
    last = _last_epoch_dir(run_dir)
    if last is not None and (last / rf.CONFUSION_PNG).is_file():
        return figure(last / rf.CONFUSION_PNG, f"{last.name}: validation")
    return '<p class="note">no confusion matrix found.</p>'


def _mistakes_section(run_dir: Path, metrics: dict[str, Any]) -> str:
    for split in ("test", "val"):
        path = run_dir / rf.eval_file(rf.MISTAKES_FILE, split)
        if path.is_file():
            listed = (metrics.get(split) or {}).get("confident_mistakes") or []
            return figure(
                path, f"{split}: most confident mistakes of the best checkpoint"
            ) + mistakes_table(listed)
    last = _last_epoch_dir(run_dir)
    if last is not None and (last / rf.SAMPLE_PREDICTIONS_FILE).is_file():
        return figure(
            last / rf.SAMPLE_PREDICTIONS_FILE,
            f"{last.name}: fixed validation images and most confident mistakes",
        )
    return '<p class="note">no mistakes gallery found.</p>'


def _augmentation_section(run_dir: Path) -> str:
    path = run_dir / rf.AUGMENTATION_PREVIEW_FILE
    if path.is_file():
        return figure(path, "training images after augmentation")
    return '<p class="note">no augmentation_preview.png in this run.</p>'


def _calibration_section(run_dir: Path, metrics: dict[str, Any]) -> str:
    calibration = metrics.get("calibration")
    if not isinstance(calibration, dict) or "temperature" not in calibration:
        return '<p class="note">this run was not calibrated (no temperature).</p>'
    split = "test" if "test" in calibration else "val"
    coverage = (calibration.get(split) or {}).get("risk_coverage") or []
    return (
        temperature_note(float(calibration["temperature"]))
        + calibration_table(calibration)
        + f"<h3>risk-coverage ({esc(split)}, calibrated confidences)</h3>"
        + risk_coverage_table(coverage)
        + figure(
            run_dir / str(calibration.get("reliability_diagram")),
            "reliability diagram",
        )
    )


def _model_section(run_dir: Path) -> str:
    info = read_json(run_dir / rf.MODEL_INFO_FILE)
    mapping = read_json(run_dir / rf.LABELS_MAPPING_FILE)
    if not info and not mapping:
        return '<p class="note">no model_info.json or labels_mapping.json.</p>'
    size = info.get("image_size", mapping.get("image_size", "-"))
    rows = [
        ["architecture", str(info.get("arch", mapping.get("arch", "-")))],
        ["classes", fmt(info.get("num_classes", len(mapping.get("class_names", []))))],
        ["parameters", fmt(info.get("params_total"))],
        ["trainable parameters", fmt(info.get("params_trainable"))],
        ["size", f"{fmt(info.get('size_mb'), 2)} MB"],
        [f"GFLOPs at {size}x{size}", fmt(info.get("gflops"), 3)],
        ["training precision", str(info.get("precision", "-"))],
        ["input", f"{size}x{size}, resize {mapping.get('resize_mode', '-')}"],
        ["mean / std", f"{mapping.get('mean', '-')} / {mapping.get('std', '-')}"],
    ]
    return table(["", ""], rows)


def _deployment_section(run_dir: Path) -> str:
    summary = read_json(run_dir / rf.EXPORT_SUMMARY_FILE)
    rows = []
    for precision in rf.MODEL_PRECISIONS:
        entry = summary.get(precision)
        if not isinstance(entry, dict):
            continue
        guard = entry.get("guard") or {}
        scheme = entry.get("scheme") or {}
        how = (
            f"{scheme.get('activation_type')} activations, target "
            f"{scheme.get('target')}, {(entry.get('calibration') or {}).get('method')}"
            if scheme
            else "-"
        )
        kept = entry.get("kept", True)
        rows.append(
            [
                str(entry.get("file", "-"))
                if kept
                else f"{entry.get('file')} (refused)",
                f"{fmt((entry.get('size_bytes') or 0) / 1e6, 2)} MB",
                how,
                str(guard.get("split", "-")),
                pct(guard.get("top1_fp32")),
                pct(guard.get("top1")),
                fmt(guard.get("drop_points"), 2),
                pct(guard.get("agreement")),
                fmt(guard.get("max_confidence_diff"), 3),
            ]
        )
    if not rows:
        return (
            '<p class="note">only model.onnx (fp32); <code>classifier-export '
            "RUN/model.onnx --precision int8 fp16</code> adds the others.</p>"
        )
    header = [
        "file", "size", "int8 scheme", "guard split", "top-1 fp32", "top-1",
        "drop (points)", "same answer", "max confidence diff",
    ]  # fmt: skip
    return (
        "<p class='note'>Files written by classifier-export --precision, each "
        "checked against fp32 by the accuracy guard before it was kept.</p>"
        + table(header, rows)
    )


def _files_section(run_dir: Path) -> str:
    items = [
        f'<li><a href="{esc(name)}">{esc(name)}</a>: {esc(what)}</li>'
        for name, what in LINKED_FILES
        if (run_dir / name).is_file()
    ]
    return "<ul>" + "".join(items) + "</ul>" if items else "<p>none</p>"


def render_run_report(run_dir: Path) -> str:
    """The HTML of a run's page.

    Args:
        run_dir: The run folder.

    Returns:
        The page.

    Raises:
        ReportError: If the folder has no ``metrics.json`` (not a finished run).
    """
    metrics = read_json(run_dir / rf.METRICS_FILE)
    if not metrics:
        raise ReportError(
            f"{run_dir}: no readable metrics.json; not a finished training run "
            "(for a classifier-evaluate folder, pass the folder with summary.json)"
        )
    sections = [
        ("command", "Command and config", _command_section(run_dir)),
        ("metrics", "Final metrics", _metrics_section(metrics)),
        ("data", "Data", _data_section(run_dir, metrics)),
        ("per-class", "Per class", _per_class_section(metrics)),
        ("curves", "Training curves", figures(
            (run_dir / rf.history_file(name), name) for name in rf.HISTORY_PLOTS
        )),
        ("confusion", "Confusion matrix", _confusion_section(run_dir)),
        ("mistakes", "Most confident mistakes", _mistakes_section(run_dir, metrics)),
        ("augmentation", "Augmentation preview", _augmentation_section(run_dir)),
        ("calibration", "Calibration", _calibration_section(run_dir, metrics)),
        ("model", "Model", _model_section(run_dir)),
        ("deployment", "Deployment precisions", _deployment_section(run_dir)),
        ("files", "Files", _files_section(run_dir)),
    ]  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    test = (metrics.get("test") or metrics.get("val") or {}).get("acc_top1")
    split = "test" if "test" in metrics else "val"
    return page(
        f"Training run: {split} top-1 {pct(test)}",
        f"{run_dir.resolve()} (report built {when})",
        sections,
    )


def build_run_report(run_dir: Path) -> Path:
    """Write ``RUN_DIR/report.html`` atomically.

    Args:
        run_dir: The run folder.

    Returns:
        The page's path.

    Raises:
        ReportError: If the folder is not a finished run.
    """
    return atomic_write_text(run_dir / rf.REPORT_FILE, render_run_report(run_dir))
