"""``classifier-report --compare``: several runs side by side on one page.

Sections: the runs; the config keys whose values differ (only those, from each
run's ``.hydra/config.yaml``, flattened to dotted keys); the results table
ranked by the monitored metric; whether the best setting's lead is larger than
the seed spread (runs that differ only by ``seed`` are one setting); val top-1
and train loss of all runs overlaid; the classes whose top-1 changed most; the
confusion pairs that appeared or disappeared relative to the first run.

Runs with different class sets are compared on the classes they share, with a
warning naming the rest. A run that did not finish appears in the config and
results tables and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifier_training.core import run_files as rf
from classifier_training.core.io import atomic_write_text
from classifier_training.report.html import esc, page, pct, table
from classifier_training.report.run import ReportError, read_json
from classifier_training.report.runs import (
    RunRecord,
    expand_folders,
    is_sweep_folder,
    read_run,
    unique_labels,
    varying_keys,
)
from classifier_training.report.settings import (
    group_by_setting,
    lead_verdict,
    spread_text,
)
from classifier_training.report.sweep import curves_html, results_table, settings_table

#: Anchors of the compare page's sections, in order.
COMPARE_SECTIONS = (
    "runs",
    "config",
    "metrics",
    "seeds",
    "curves",
    "per-class",
    "confusions",
)
#: At most this many classes in the per-class table, and pairs per run and kind.
TOP_CLASSES = 20
TOP_PAIRS = 10
ABSENT = "(absent)"


@dataclass(frozen=True)
class Comparison:
    """The runs of a compare page and what the page derives from them.

    Attributes:
        labels: One short label per run.
        records: The runs, in the order given.
        config_keys: Config keys whose values differ between the runs.
        split: The split compared per class (``test`` when every finished run
            has it, else ``val``).
        shared_classes: Classes present in every finished run, sorted.
        warnings: One line per thing the reader must know (class sets differ,
            a run did not finish).
    """

    labels: tuple[str, ...]
    records: tuple[RunRecord, ...]
    config_keys: tuple[str, ...]
    split: str
    shared_classes: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def finished(self) -> list[int]:
        """Indices of the runs with final metrics."""
        return [i for i, r in enumerate(self.records) if r.finished]


def _class_sets(
    labels: Sequence[str], records: Sequence[RunRecord], split: str
) -> tuple[list[str], list[str]]:
    sets = {
        label: set(r.per_class_top1(split))
        for label, r in zip(labels, records, strict=True)
    }
    if not sets:
        return [], []
    shared = set.intersection(*sets.values())
    warnings = []
    union = set.union(*sets.values())
    if union != shared:
        extra = []
        for name in sorted(union - shared):
            having = [label for label, classes in sets.items() if name in classes]
            extra.append(f"{name!r} (only in {', '.join(having)})")
        warnings.append(
            f"the runs have different class sets: compared on the {len(shared)} "
            f"shared classes; not in every run: {'; '.join(extra)}"
        )
    return sorted(shared), warnings


def compare_runs(folders: Sequence[Path]) -> Comparison:
    """Read the runs of ``folders`` (sweeps expand to their jobs).

    Args:
        folders: Run folders and sweep folders.

    Returns:
        The comparison.

    Raises:
        ReportError: If a folder is neither a run nor a sweep, or fewer than two
            runs result.
    """
    paths = expand_folders(folders)
    if len(paths) < 2:
        raise ReportError(
            f"--compare needs at least two runs; {', '.join(map(str, folders))} "
            f"gave {len(paths)}"
        )
    records = [read_run(p) for p in paths]
    labels = unique_labels(paths)
    warnings = [
        f"{label} did not finish ({r.status}: {r.error})"
        for label, r in zip(labels, records, strict=True)
        if not r.finished
    ]
    finished = [
        (label, r) for label, r in zip(labels, records, strict=True) if r.finished
    ]
    split = (
        "test" if finished and all("test" in r.metrics for _, r in finished) else "val"
    )
    shared, class_warnings = _class_sets(
        [label for label, _ in finished], [r for _, r in finished], split
    )
    return Comparison(
        labels=tuple(labels),
        records=tuple(records),
        config_keys=tuple(varying_keys([r.config for r in records])),
        split=split,
        shared_classes=tuple(shared),
        warnings=tuple(class_warnings + warnings),
    )


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _runs_section(c: Comparison) -> str:
    rows = [
        [label, r.status, str(r.path.resolve())]
        for label, r in zip(c.labels, c.records, strict=True)
    ]
    notes = "".join(f'<p class="bad">warning: {esc(w)}</p>' for w in c.warnings)
    return notes + table(["run", "status", "folder"], rows)


def _config_section(c: Comparison) -> str:
    if not c.config_keys:
        return '<p class="note">the configs are identical.</p>'
    rows = [
        [key, *(_value_text(r.config[key]) if key in r.config else ABSENT
                for r in c.records)]
        for key in c.config_keys
    ]  # fmt: skip
    note = (
        f'<p class="note">{len(c.config_keys)} config keys differ (from each '
        f"run's {esc(rf.CONFIG_FILE)}); every other key is the same.</p>"
    )
    return note + table(["key", *c.labels], rows, scroll=True)


def _ranked(c: Comparison) -> list[int]:
    monitor_mode = next(((r.monitor, r.mode) for r in c.records if r.finished), None)
    sign = -1.0 if monitor_mode is None or monitor_mode[1] == "max" else 1.0

    def key(i: int) -> tuple[bool, float, int]:
        value = c.records[i].monitored
        return (value is None, sign * value if value is not None else 0.0, i)

    return sorted(range(len(c.records)), key=key)


def _seeds_section(c: Comparison) -> str:
    first = next((r for r in c.records if r.finished), c.records[0])
    monitor, mode = first.monitor, first.mode
    runs = [
        (label, {k: _value_text(r.config.get(k, ABSENT)) for k in c.config_keys},
         r.monitored)
        for label, r in zip(c.labels, c.records, strict=True)
    ]  # fmt: skip
    settings = group_by_setting(runs, higher_is_better=mode == "max")
    verdict = f"<p><b>{esc(lead_verdict(settings, monitor))}</b></p>"
    return verdict + settings_table(settings, monitor)


def _per_class_section(c: Comparison) -> str:
    finished = c.finished
    if not c.shared_classes:
        return '<p class="note">no per-class scores shared by the runs.</p>'
    scores = {i: c.records[i].per_class_top1(c.split) for i in finished}
    changes = []
    for name in c.shared_classes:
        values = [scores[i][name] for i in finished]
        changes.append((max(values) - min(values), name, values))
    changes.sort(key=lambda item: (-item[0], item[1]))
    rows = [
        [name, *(pct(v) for v in values), spread_text("acc", change)]
        for change, name, values in changes[:TOP_CLASSES]
    ]
    note = (
        f'<p class="note">{esc(c.split)} top-1 per class; the '
        f"{min(TOP_CLASSES, len(changes))} of {len(changes)} shared classes whose "
        "accuracy changed most between the runs (max - min).</p>"
    )
    header = ["class", *(c.labels[i] for i in finished), "change"]
    return note + table(header, rows, scroll=True)


def _confusion_pairs(
    record: RunRecord, split: str, shared: set[str]
) -> dict[tuple[str, str], int] | None:
    data: dict[str, Any] = {}
    for name in rf.eval_file_names(rf.CONFUSION_JSON, split):
        data = data or read_json(record.path / name)
    names, matrix = data.get("class_names"), data.get("matrix")
    if not isinstance(names, list) or not isinstance(matrix, list):
        return None
    pairs = {}
    for t, row in enumerate(matrix):
        for p, count in enumerate(row):
            if t != p and count and names[t] in shared and names[p] in shared:
                pairs[(str(names[t]), str(names[p]))] = int(count)
    return pairs


def _confusions_section(c: Comparison) -> str:
    shared = set(c.shared_classes)
    finished = c.finished
    pairs = {i: _confusion_pairs(c.records[i], c.split, shared) for i in finished}
    available = [i for i in finished if pairs[i] is not None]
    if len(available) < 2:
        return (
            f'<p class="note">fewer than two runs have '
            f"{esc(rf.eval_file(rf.CONFUSION_JSON, c.split))} (the confusion_matrix "
            "callback writes it).</p>"
        )
    reference = available[0]
    base = pairs[reference] or {}
    rows = []
    for i in available[1:]:
        other = pairs[i] or {}
        appeared = sorted(
            ((n, k) for k, n in other.items() if k not in base),
            key=lambda x: (-x[0], x[1]),
        )
        gone = sorted(
            ((n, k) for k, n in base.items() if k not in other),
            key=lambda x: (-x[0], x[1]),
        )
        for kind, items in (("appeared", appeared), ("disappeared", gone)):
            for n, (true, predicted) in items[:TOP_PAIRS]:
                rows.append([c.labels[i], kind, true, predicted, str(n)])
    note = (
        f'<p class="note">{esc(c.split)} confusions (true -> predicted, shared '
        f"classes) of each run against the first, {esc(c.labels[reference])}: pairs "
        f"with mistakes in one and none in the other (up to {TOP_PAIRS} per run and "
        "kind, most rows first).</p>"
    )
    if not rows:
        return note + "<p>the same confusion pairs in every run.</p>"
    header = ["run", "pair", "true", "predicted", "rows"]
    return note + table(header, rows, scroll=True)


def render_compare_html(c: Comparison) -> str:
    """The compare page."""
    order = _ranked(c)
    labels = [c.labels[i] for i in order]
    records = [c.records[i] for i in order]
    finished = c.finished
    sections = [
        ("runs", "Runs", _runs_section(c)),
        ("config", "Config differences", _config_section(c)),
        ("metrics", "Metrics (best first)", results_table(labels, records)),
        ("seeds", "Lead versus seed spread", _seeds_section(c)),
        ("curves", "Curves", curves_html(
            [c.labels[i] for i in finished], [c.records[i] for i in finished]
        )),
        ("per-class", "Per-class top-1: largest changes", _per_class_section(c)),
        ("confusions", "Confusion pairs that appeared or disappeared",
         _confusions_section(c)),
    ]  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page(
        f"Comparison of {len(c.records)} runs",
        f"built {when}",
        sections,
    )


def default_output(folders: Sequence[Path]) -> Path:
    """``SWEEP/compare.html`` for a single sweep folder, else ``./compare.html``."""
    if len(folders) == 1 and is_sweep_folder(folders[0]):
        return folders[0] / rf.COMPARE_FILE
    return Path(rf.COMPARE_FILE)


def build_compare_report(
    folders: Sequence[Path], output: Path | None = None
) -> tuple[Path, Comparison]:
    """Write the compare page of ``folders``.

    Args:
        folders: Run folders and sweep folders.
        output: The page's path (default :func:`default_output`).

    Returns:
        The page's path and the comparison (its warnings to print).

    Raises:
        ReportError: As :func:`compare_runs`.
    """
    comparison = compare_runs(folders)
    target = output or default_output(folders)
    return atomic_write_text(target, render_compare_html(comparison)), comparison
