"""``label_issues.html``: the review page of ``classifier-audit-labels``.

Built from the audit folder's ``label_issues.jsonl`` and ``summary.json`` alone
(``classifier-report AUDIT_DIR`` rebuilds it). Flagged rows are grouped by
class pair (given -> suggested), most frequent pair first; each row is a card
with its crop (embedded, shown 128 px tall: a number stays readable), the given
and suggested labels with their probabilities, the reason, and the ``file:line``
to fix. The page shows the most suspicious rows up to a limit; the JSONL file
holds them all.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from classifier_training.core.confident_learning import REASONS
from classifier_training.core.image_io import load_image
from classifier_training.core.io import atomic_write_text
from classifier_training.core.readers import display_name
from classifier_training.core.run_files import (
    FLAGGED_ROWS_FILE,
    LABEL_ISSUES_FILE,
    LABEL_ISSUES_HTML,
    SUMMARY_FILE,
)
from classifier_training.report.html import (
    embedded_image,
    esc,
    fmt,
    page,
    pct,
    table,
)
from classifier_training.report.run import ReportError, read_json

#: Rows shown on the page by default (the most suspicious ones).
DEFAULT_MAX_ROWS = 500
#: Longest side of an embedded thumbnail, in pixels (larger crops are shrunk).
THUMB_MAX_SIDE = 192
#: Crops shorter than this are enlarged without smoothing (sharp pixels).
SMALL_CROP = 64

STYLE = """
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 12px; }
.card { width: 214px; border: 1px solid #e3e6eb; border-radius: 6px; padding: 8px;
  font-size: 12px; background: #fff; }
.card img.thumb, .card img.pixelated { height: 128px; width: auto; max-width: 196px;
  display: block; margin: 0 auto 6px auto; }
.card img.pixelated { image-rendering: pixelated; }
.labels { font-size: 16px; font-weight: 600; margin: 2px 0; }
.where { font-family: ui-monospace, monospace; word-break: break-all;
  user-select: all; background: #f0f2f5; padding: 2px 4px; display: block; }
"""


def read_issues(path: Path) -> list[dict[str, Any]]:
    """The rows of ``label_issues.jsonl`` (in file order: most suspicious first).

    Raises:
        ReportError: If the file is missing or a line is not a JSON object.
    """
    if not path.is_file():
        raise ReportError(f"{path}: not found (run classifier-audit-labels first)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReportError(
                f"{path}:{number}: not valid JSON ({error.msg})"
            ) from None
        if not isinstance(row, dict):
            raise ReportError(f"{path}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def thumbnail(path: Path) -> tuple[bytes, str, bool] | None:
    """The crop as embeddable bytes: ``(data, mime type, small)``; ``None`` if
    unreadable. Small crops are kept as they are (PNG) and enlarged by the
    browser without smoothing; larger ones are shrunk to
    :data:`THUMB_MAX_SIDE` (JPEG)."""
    try:
        image = load_image(path)
    except OSError:
        return None
    small = max(image.size) < SMALL_CROP
    buffer = io.BytesIO()
    if small:
        image.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png", True
    image.thumbnail((THUMB_MAX_SIDE, THUMB_MAX_SIDE), Image.Resampling.LANCZOS)
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), "image/jpeg", False


def where(row: Mapping[str, Any]) -> str:
    """The place to fix the row: ``annotations.jsonl:line``, or the image path."""
    if row.get("annotations") and row.get("line") is not None:
        return f"{row['annotations']}:{row['line']}"
    return str(row.get("image", "?"))


def _card(row: Mapping[str, Any]) -> str:
    thumb = thumbnail(Path(str(row.get("image", ""))))
    given, suggested = str(row.get("given", "")), str(row.get("suggested", ""))
    alt = f"given {display_name(given)}, suggested {display_name(suggested)}"
    if thumb is None:
        picture = '<p class="note bad">image not readable</p>'
    else:
        data, mime, small = thumb
        picture = embedded_image(data, mime, alt, "pixelated" if small else "thumb")
    track = f"<div>track {esc(row['track'])}</div>" if row.get("track") else ""
    fold = f", fold {esc(row['fold'])}" if row.get("fold") is not None else ""
    return (
        f'<div class="card">{picture}'
        f'<div class="labels"><span class="bad">{esc(display_name(given))}</span>'
        f' &rarr; <span class="good">{esc(display_name(suggested))}</span></div>'
        f"<div>p {fmt(row.get('p_given'), 3)} &rarr; {fmt(row.get('p_suggested'), 3)}"
        f" (score {fmt(row.get('score'), 3)})</div>"
        f"<div>{esc(row.get('reason', ''))} &middot; {esc(row.get('split', ''))}"
        f"{fold}</div>{track}"
        f'<code class="where">{esc(where(row))}</code></div>'
    )


def _pair_key(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("given", "")), str(row.get("suggested", ""))


def _anchor(index: int) -> str:
    return f"pair-{index}"


def _overview(summary: Mapping[str, Any], shown: int, total: int) -> str:
    splits = summary.get("rows") or {}
    lines = [
        ["data root", str(summary.get("data_root", "-"))],
        ["recipe", " ".join([str(summary.get("config_name", "-"))] + [
            str(o) for o in summary.get("overrides") or []
        ])],
        ["folds", fmt(summary.get("folds"))],
        ["group key", str(summary.get("group_key") or "-")],
        ["flagged rows", fmt(total)],
    ]  # fmt: skip
    for split, counts in splits.items():
        lines.append(
            [
                f"{split}: rows / audited / flagged",
                f"{fmt(counts.get('rows'))} / {fmt(counts.get('audited'))} / "
                f"{fmt(counts.get('flagged'))}",
            ]
        )
    reasons = summary.get("reasons") or {}
    reason_rows = [
        [name, fmt(reasons.get(name, 0)), text] for name, text in REASONS.items()
    ]
    notes = "".join(
        f'<p class="note">{esc(note)}</p>' for note in summary.get("not_audited") or []
    )
    folds = summary.get("fold_runs") or []
    fold_rows = [
        [
            fmt(f.get("fold")),
            fmt(f.get("held_out")),
            pct(f.get("val_acc_top1")),
            fmt(f.get("temperature"), 3),
            str(f.get("run_dir", "-")),
        ]
        for f in folds
    ]
    truncated = (
        f'<p class="note">The review below shows the {shown} most suspicious of '
        f"{total} flagged rows; {LABEL_ISSUES_FILE} holds them all.</p>"
        if shown < total
        else ""
    )
    return (
        f"<style>{STYLE}</style>"
        + table(["", ""], lines)
        + "<h3>reasons</h3>"
        + table(["reason", "rows", "meaning"], reason_rows)
        + notes
        + "<h3>fold models</h3>"
        + table(["fold", "held out", "val top-1", "temperature", "run"], fold_rows)
        + truncated
        + '<p class="note">Fix a row at its file:line (or train on the copy '
        "<code>--write-clean DIR</code> writes); retrain without the flagged train "
        f"rows with <code>data.exclude_rows=AUDIT/{FLAGGED_ROWS_FILE}</code>.</p>"
    )


def _pairs(
    pairs: Sequence[Mapping[str, Any]], anchors: Mapping[tuple[str, str], str]
) -> str:
    rows, values = [], []
    for p in pairs:
        key = (str(p.get("given", "")), str(p.get("suggested", "")))
        reasons = ", ".join(f"{k} {v}" for k, v in (p.get("reasons") or {}).items())
        rows.append(
            [
                f"{display_name(key[0])} -> {display_name(key[1])}",
                fmt(p.get("count")),
                pct(p.get("share_of_given")),
                reasons,
            ]
        )
        values.append([None, p.get("count"), p.get("share_of_given"), None])
    markup = table(
        ["given -> suggested", "rows", "share of given", "reasons"],
        rows,
        sortable=True,
        scroll=True,
        raw_values=values,
    )
    links = " ".join(
        f'<a href="#{esc(anchor)}">{esc(display_name(g))} &rarr; '
        f"{esc(display_name(s))}</a>"
        for (g, s), anchor in anchors.items()
    )
    return markup + (f'<p class="note">shown below: {links}</p>' if links else "")


def render_label_issues(
    summary: Mapping[str, Any],
    issues: Sequence[Mapping[str, Any]],
    max_rows: int = DEFAULT_MAX_ROWS,
) -> str:
    """The HTML of the review page.

    Args:
        summary: The audit's ``summary.json``.
        issues: The flagged rows (``label_issues.jsonl``), most suspicious first.
        max_rows: Most rows shown (the first ones of ``issues``).

    Returns:
        The page.
    """
    shown = list(issues[:max_rows])
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in shown:
        groups[_pair_key(row)].append(row)
    order = sorted(groups, key=lambda k: (-len(groups[k]), k))
    anchors = {key: _anchor(i) for i, key in enumerate(order)}
    review = "".join(
        f'<h3 id="{anchors[key]}">{esc(display_name(key[0]))} &rarr; '
        f"{esc(display_name(key[1]))} ({len(groups[key])})</h3>"
        f'<div class="cards">{"".join(_card(row) for row in groups[key])}</div>'
        for key in order
    )
    files = "".join(
        f'<li><a href="{name}">{name}</a></li>'
        for name in (LABEL_ISSUES_FILE, SUMMARY_FILE, FLAGGED_ROWS_FILE)
    )
    sections = [
        ("overview", "Overview", _overview(summary, len(shown), len(issues))),
        ("pairs", "Class pairs", _pairs(summary.get("pairs") or [], anchors)),
        ("review", "Rows to review", review or '<p class="note">nothing flagged.</p>'),
        ("files", "Files", f"<ul>{files}</ul>"),
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page(
        f"Label audit: {len(issues)} rows to review",
        f"{summary.get('data_root', '')} ({when})",
        sections,
    )


def build_label_issues_report(
    audit_dir: Path, max_rows: int = DEFAULT_MAX_ROWS
) -> Path:
    """Write ``audit_dir/label_issues.html`` from the folder's JSONL and summary.

    Raises:
        ReportError: If ``label_issues.jsonl`` is missing or malformed.
    """
    issues = read_issues(audit_dir / LABEL_ISSUES_FILE)
    summary = read_json(audit_dir / SUMMARY_FILE) or {}
    return atomic_write_text(
        audit_dir / LABEL_ISSUES_HTML, render_label_issues(summary, issues, max_rows)
    )
