"""``report.html`` of a ``classifier-evaluate`` folder (one model on one split)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier_training.core.io import atomic_write_text
from classifier_training.core.run_files import (
    CONFUSION_PNG,
    MISTAKES_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    WORST_TRACKS_FILE,
)
from classifier_training.report.html import esc, figure, fmt, page, pct, table
from classifier_training.report.sections import (
    mistakes_table,
    per_class_table,
    risk_coverage_table,
    temperature_note,
)

#: Anchors of the evaluation page's sections, in order.
EVALUATION_SECTIONS = (
    "overview",
    "per-class",
    "confusion",
    "mistakes",
    "calibration",
    "files",
)
#: The section added before ``files`` when the split was scored per track.
TRACKS_SECTION = "tracks"


def _overview(summary: Mapping[str, Any]) -> str:
    macro = summary.get("macro") or {}
    excluded = summary.get("excluded_rows") or {}
    rows = [
        ["model", str(summary.get("model", "-"))],
        ["data root", str(summary.get("data_root", "-"))],
        ["split", str(summary.get("split", "-"))],
        ["rows evaluated", fmt(summary.get("num_rows"))],
        ["rows excluded (label unknown to the model)", fmt(excluded.get("count", 0))],
        ["top-1", pct(summary.get("top1"))],
        [f"top-{summary.get('top5_k', 5)}", pct(summary.get("top5"))],
        ["macro precision", fmt(macro.get("precision"), 3)],
        ["macro recall", fmt(macro.get("recall"), 3)],
        ["macro F1", fmt(macro.get("f1"), 3)],
    ]
    confused = summary.get("most_confused") or []
    pairs = table(
        ["true", "predicted", "rows", "share of true"],
        [
            [p["true"], p["predicted"], fmt(p["count"]), pct(p["share_of_true"])]
            for p in confused
        ],
    )
    return table(["", ""], rows) + (
        "<h3>most confused pairs</h3>" + pairs if confused else ""
    )


def _calibration(summary: Mapping[str, Any]) -> str:
    calibration = summary.get("calibration") or {}
    if "temperature" not in calibration:
        return '<p class="note">no calibration recorded.</p>'
    rows = [
        ["ECE T=1", fmt(calibration.get("ece_uncalibrated"))],
        ["ECE with the model's temperature", fmt(calibration.get("ece"))],
    ]
    return (
        temperature_note(float(calibration["temperature"]))
        + table(["", ""], rows)
        + "<h3>risk-coverage (calibrated confidences)</h3>"
        + risk_coverage_table(summary.get("risk_coverage") or [])
    )


def _tracks(out_dir: Path, tracks: Mapping[str, Any]) -> str:
    """Track top-1 beside frame top-1, the coverage table, the worst tracks."""
    rows = [
        ["group key", f"metadata.{tracks.get('key', '?')}"],
        ["aggregation rule", str(tracks.get("rule", "-"))],
        ["tracks", fmt(tracks.get("num_tracks"))],
        ["rows without the key (a track each)", fmt(tracks.get("rows_without_key"))],
        ["track top-1", pct(tracks.get("top1"))],
        ["frame top-1", pct(tracks.get("frame_top1"))],
    ]
    if tracks.get("min_confidence"):
        rows += [
            [f"answered at >= {tracks['min_confidence']}", pct(tracks.get("coverage"))],
            ["accuracy of the answered", pct(tracks.get("accuracy_answered"))],
        ]
    worst = tracks.get("worst") or []
    worst_rows = [
        [
            w["track"],
            w["truth"],
            w["answer"] if w["answer"] is not None else f"({w['best']}, abstained)",
            fmt(float(w["confidence"]), 3),
            f"{w['frames_used']} / {w['frames']}",
            w["first_row"],
        ]
        for w in worst
    ]
    header = ["track", "truth", "answer", "confidence", "legible / frames", "row"]
    return (
        table(["", ""], rows)
        + '<p class="note">A track answers with its frames\' calibrated '
        "probabilities combined by the rule; its truth is its most frequent "
        "non-empty frame label. Below a threshold a track abstains "
        "(<code>--min-confidence</code>).</p>"
        + "<h3>risk-coverage per track</h3>"
        + risk_coverage_table(tracks.get("risk_coverage") or [], unit="tracks")
        + "<h3>worst tracks (wrong, most confident first)</h3>"
        + (
            figure(out_dir / WORST_TRACKS_FILE, "frames of the worst tracks")
            + table(header, worst_rows, scroll=True)
            if worst
            else '<p class="note">every track answered right.</p>'
        )
    )


def render_evaluation_report(out_dir: Path, summary: Mapping[str, Any]) -> str:
    """The HTML of an evaluation folder's page.

    Args:
        out_dir: The folder holding ``summary.json`` and the PNGs.
        summary: The evaluation summary (``summary.json``).

    Returns:
        The page.
    """
    split = str(summary.get("split", "?"))
    files = [
        f'<li><a href="{name}">{name}</a></li>'
        for name in (SUMMARY_FILE, CONFUSION_PNG, MISTAKES_FILE, WORST_TRACKS_FILE)
        if (out_dir / name).is_file()
    ]
    sections = [
        ("overview", "Overview", _overview(summary)),
        ("per-class", "Per class", per_class_table(summary.get("per_class") or {})),
        ("confusion", "Confusion matrix", figure(
            out_dir / CONFUSION_PNG, f"{split} confusion matrix"
        )),
        ("mistakes", "Most confident mistakes", figure(
            out_dir / MISTAKES_FILE, "most confident mistakes"
        ) + mistakes_table(summary.get("confident_mistakes") or [])),
        ("calibration", "Calibration", _calibration(summary)),
        ("files", "Files", "<ul>" + "".join(files) + "</ul>"),
    ]  # fmt: skip
    tracks = summary.get("tracks")
    if isinstance(tracks, Mapping):
        sections.insert(-1, (TRACKS_SECTION, "Tracks", _tracks(out_dir, tracks)))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page(
        f"Evaluation on {split}: top-1 {pct(summary.get('top1'))}",
        f"{esc(summary.get('model', ''))} on {out_dir.resolve()} ({when})",
        sections,
    )


def build_evaluation_report(out_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``out_dir/report.html`` atomically; returns its path."""
    return atomic_write_text(
        out_dir / REPORT_FILE, render_evaluation_report(out_dir, summary)
    )
