"""Section bodies shared by the run page and the evaluation page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from classifier_training.report.html import esc, fmt, pct, table


def per_class_table(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    """Precision, recall, F1 and support per class, worst F1 first (sortable).

    Args:
        per_class: Class display name to ``precision``/``recall``/``f1``/``support``.

    Returns:
        The markup (a note when empty).
    """
    if not per_class:
        return '<p class="note">no per-class scores recorded.</p>'
    ordered = sorted(per_class.items(), key=lambda item: (item[1]["f1"], item[0]))
    rows, values = [], []
    for name, row in ordered:
        rows.append(
            [
                name,
                fmt(row["precision"], 3),
                fmt(row["recall"], 3),
                fmt(row["f1"], 3),
                fmt(int(row["support"])),
            ]
        )
        values.append(
            [name, row["precision"], row["recall"], row["f1"], row["support"]]
        )
    note = (
        f'<p class="note">{len(rows)} classes, sorted by F1 (worst first); click a '
        "column header to sort.</p>"
    )
    header = ["class", "precision", "recall", "F1", "support"]
    return note + table(header, rows, sortable=True, scroll=True, raw_values=values)


def risk_coverage_table(rows: Sequence[Mapping[str, Any]], unit: str = "rows") -> str:
    """Accuracy and coverage when predictions under a confidence are refused.

    Args:
        rows: The table (``threshold``, ``coverage``, ``kept``, ``accuracy``).
        unit: What was answered: ``rows`` (frames) or ``tracks``.
    """
    if not rows:
        return '<p class="note">no risk-coverage table recorded.</p>'
    body = [
        [
            f"{float(r['threshold']):.2f}",
            pct(r["coverage"]),
            fmt(int(r["kept"])),
            pct(r["accuracy"]) if int(r["kept"]) else "-",
        ]
        for r in rows
    ]
    header = ["min confidence", "coverage", f"{unit} answered", "accuracy (answered)"]
    return table(header, body)


def mistakes_table(mistakes: Sequence[Mapping[str, Any]]) -> str:
    """The most confident mistakes: true, predicted, confidence, image."""
    if not mistakes:
        return '<p class="note">no mistakes recorded.</p>'
    body = [
        [m["true"], m["predicted"], fmt(float(m["confidence"]), 3), m["image"]]
        for m in mistakes
    ]
    return table(["true", "predicted", "confidence", "image"], body, scroll=True)


def calibration_table(calibration: Mapping[str, Any]) -> str:
    """ECE and NLL before/after temperature scaling, per split."""
    rows = []
    for split in ("val", "test"):
        entry = calibration.get(split)
        if not isinstance(entry, Mapping):
            continue
        before, after = float(entry["ece_before"]), float(entry["ece_after"])
        rows.append(
            [
                split,
                fmt(int(entry["rows"])),
                fmt(before),
                fmt(after),
                fmt(float(entry["nll_before"])),
                fmt(float(entry["nll_after"])),
            ]
        )
    if not rows:
        return ""
    header = ["split", "rows", "ECE T=1", "ECE calibrated", "NLL T=1", "NLL calibrated"]
    return table(header, rows)


def temperature_note(temperature: float) -> str:
    """What the temperature means for deployments that read the ONNX file alone."""
    return (
        f"<p>Temperature <b>T = {esc(f'{temperature:.4f}')}</b>, fitted on the "
        "validation logits of the best checkpoint (minimum NLL). Confidences are "
        "<code>softmax(logits / T)</code>: <code>ONNXClassifier</code> and "
        "<code>CheckpointClassifier</code> apply it; <code>model.onnx</code> "
        "outputs raw logits, so other runtimes must divide by the "
        "<code>temperature</code> of <code>labels_mapping.json</code>. It never "
        "changes the predicted class.</p>"
    )
