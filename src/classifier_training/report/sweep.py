"""The summary of a sweep folder: ``summary.csv``, ``summary.html``, a Rich table.

One row per job (failed and pruned jobs included, with the first line of their
error): the job, the overrides that vary between jobs as columns, the final
val/test top-1 and top-5 of the best checkpoint, the calibrated ECE, the best
epoch, epochs run, wall time, status and run folder. The page ranks the jobs by
the monitored metric (best first) and overlays their curves; when ``seed`` is
one of the varying overrides, jobs that differ only by seed are grouped into
settings with mean and std (``summary_settings.csv``), and the page says
whether the best setting's lead is larger than the seed spread.

Written by the sweep callback (:mod:`classifier_training.report.sweep_callback`)
after every job, by ``classifier-tune`` after every trial, and by
``classifier-report SWEEP_DIR``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from classifier_training.core import run_files as rf
from classifier_training.core.io import atomic_write_text
from classifier_training.plots.figures import figure_png
from classifier_training.plots.history import plot_runs_metric
from classifier_training.report.html import esc, fmt, page, pct, png_tag, table
from classifier_training.report.run import ReportError
from classifier_training.report.runs import (
    OK,
    RESULT_COLUMNS,
    RunRecord,
    read_run,
    sweep_jobs,
    varying_keys,
)
from classifier_training.report.settings import (
    SEED_KEY,
    Setting,
    group_by_setting,
    lead_verdict,
    mean_std_text,
    metric_text,
    seeds_vary,
)

#: Anchors of the summary page's sections, in order.
SWEEP_SECTIONS = ("jobs", "settings", "curves", "command")
#: The curves overlaid for all jobs: (logged metric, title).
OVERLAID_CURVES = (("val/acc_top1", "val top-1"), ("train/loss", "train loss"))
SETTINGS_COLUMNS = ("setting", "runs", "seeds", "mean", "std", "values")


@dataclass(frozen=True)
class SweepSummary:
    """The jobs of a sweep folder and what varies between them.

    Attributes:
        folder: The sweep folder.
        jobs: The job labels (folder names relative to the sweep), job order.
        records: The runs, same order.
        override_keys: Overrides whose value differs between jobs.
        monitor: The metric that ranks the jobs.
        mode: ``max`` or ``min``.
        settings: Jobs grouped by setting over seeds (empty unless ``seed``
            varies).
    """

    folder: Path
    jobs: tuple[str, ...]
    records: tuple[RunRecord, ...]
    override_keys: tuple[str, ...]
    monitor: str
    mode: str
    settings: tuple[Setting, ...]

    @property
    def failed(self) -> int:
        """How many jobs did not finish ok (failed or pruned)."""
        return sum(r.status != OK for r in self.records)

    @property
    def all_failed(self) -> bool:
        """Whether no job produced final metrics."""
        return not any(r.finished for r in self.records)

    def ranked(self) -> list[int]:
        """Job indices, best monitored value first; jobs without one last."""
        sign = -1.0 if self.mode == "max" else 1.0

        def key(index: int) -> tuple[bool, float, int]:
            value = self.records[index].monitored
            return (value is None, sign * value if value is not None else 0.0, index)

        return sorted(range(len(self.records)), key=key)

    def varying(self, index: int) -> dict[str, str]:
        """The varying overrides of one job (absent ones left out)."""
        overrides = self.records[index].overrides
        return {k: overrides[k] for k in self.override_keys if k in overrides}


def summarize_sweep(folder: Path) -> SweepSummary:
    """Read every job of a sweep folder.

    Args:
        folder: The sweep folder (``multirun/<date>/<time>``, a study folder).

    Returns:
        The summary.

    Raises:
        ReportError: If the folder holds no job folders.
    """
    jobs = sweep_jobs(folder)
    if not jobs:
        raise ReportError(
            f"{folder}: no job folders (subfolders with {rf.OVERRIDES_FILE}); "
            "not a sweep folder"
        )
    records = [read_run(job) for job in jobs]
    keys = varying_keys([r.overrides for r in records])
    source = next((r for r in records if r.finished), records[0])
    summary = SweepSummary(
        folder=folder,
        jobs=tuple(str(job.relative_to(folder)) for job in jobs),
        records=tuple(records),
        override_keys=tuple(keys),
        monitor=source.monitor,
        mode=source.mode,
        settings=(),
    )
    if SEED_KEY not in keys or not seeds_vary([r.overrides for r in records]):
        return summary
    grouped = group_by_setting(
        [
            (label, summary.varying(i), records[i].monitored)
            for i, label in enumerate(summary.jobs)
        ],
        higher_is_better=summary.mode == "max",
    )
    return replace(summary, settings=tuple(grouped))


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def summary_csv(summary: SweepSummary) -> str:
    """``summary.csv``: job, varying overrides, :data:`RESULT_COLUMNS` (job order)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["job", *summary.override_keys, *RESULT_COLUMNS])
    for i, (job, record) in enumerate(zip(summary.jobs, summary.records, strict=True)):
        varying = summary.varying(i)
        results = record.results()
        writer.writerow(
            [
                job,
                *(varying.get(k, "") for k in summary.override_keys),
                *(_csv_value(results[c]) for c in RESULT_COLUMNS),
            ]
        )
    return buffer.getvalue()


def settings_csv(summary: SweepSummary) -> str:
    """``summary_settings.csv``: one row per setting, best mean first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SETTINGS_COLUMNS)
    for s in summary.settings:
        writer.writerow(
            [
                s.label,
                " ".join(s.runs),
                " ".join(s.seeds),
                _csv_value(s.mean),
                _csv_value(s.std),
                " ".join(_csv_value(v) for v in s.values),
            ]
        )
    return buffer.getvalue()


#: The results table's columns: (title, RESULT_COLUMNS key, is a share).
_TABLE_COLUMNS = (
    ("status", "status", False),
    ("val top-1", "val_top1", True),
    ("val top-5", "val_top5", True),
    ("test top-1", "test_top1", True),
    ("test top-5", "test_top5", True),
    ("val ECE", "val_ece", False),
    ("test ECE", "test_ece", False),
    ("best epoch", "best_epoch", False),
    ("epochs", "epochs", False),
    ("wall time (s)", "wall_time_s", False),
    ("error", "error", False),
)


def results_table(
    labels: Sequence[str],
    records: Sequence[RunRecord],
    extra: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """The sortable results table of several runs, in the given order.

    Args:
        labels: One label per run (first column).
        records: The runs.
        extra: ``(title, one value per run)`` columns after the label (the
            varying overrides).

    Returns:
        The markup.
    """
    header = ["run", *(title for title, _ in extra), *(c[0] for c in _TABLE_COLUMNS)]
    rows, values = [], []
    for i, (label, record) in enumerate(zip(labels, records, strict=True)):
        results = record.results()
        cells: list[object] = [label, *(column[i] for _, column in extra)]
        raw: list[object] = [label, *(column[i] for _, column in extra)]
        for _, key, share in _TABLE_COLUMNS:
            value = results[key]
            cells.append(pct(value) if share else fmt(value, 4 if "ece" in key else 1))
            raw.append(value if value is not None else "")
        rows.append(cells)
        values.append(raw)
    return table(header, rows, sortable=True, raw_values=values)


def settings_table(settings: Sequence[Setting], monitor: str) -> str:
    """Mean ± std of the monitored metric per setting, best first."""
    rows = [
        [
            s.label,
            mean_std_text(monitor, s),
            ", ".join(s.seeds),
            ", ".join(metric_text(monitor, v) for v in s.values) or "-",
            ", ".join(s.runs),
        ]
        for s in settings
    ]
    return table(["setting", f"{monitor} mean \N{PLUS-MINUS SIGN} std", "seeds",
                  "per seed", "runs"], rows)  # fmt: skip


def curves_html(labels: Sequence[str], records: Sequence[RunRecord]) -> str:
    """The overlaid curves of :data:`OVERLAID_CURVES` as embedded images."""
    runs = [(label, r.history) for label, r in zip(labels, records, strict=True)]
    if not any(history for _, history in runs):
        return '<p class="note">no metrics.csv in any run: no curves.</p>'
    cells = []
    for key, title in OVERLAID_CURVES:
        image = png_tag(figure_png(plot_runs_metric(runs, key, title)), title)
        cells.append(f"<figure>{image}<figcaption>{esc(title)}</figcaption></figure>")
    return '<div class="row">' + "".join(cells) + "</div>"


def _sweep_command(folder: Path) -> str:
    try:
        record = yaml.safe_load((folder / rf.MULTIRUN_FILE).read_text())
        task = [str(o) for o in record["hydra"]["overrides"]["task"]]
        name = str(record["hydra"]["job"]["config_name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return ""
    return " ".join(["classifier-train", "--config-name", name, "-m", *task])


def render_summary_html(summary: SweepSummary) -> str:
    """The sweep page: jobs ranked, settings over seeds, curves, command."""
    order = summary.ranked()
    labels = [summary.jobs[i] for i in order]
    records = [summary.records[i] for i in order]
    extra = [
        (key, [summary.varying(i).get(key, "") for i in order])
        for key in summary.override_keys
    ]
    links = " ".join(
        f'<a href="{esc(job)}/{rf.REPORT_FILE}">{esc(job)}</a>'
        for job, record in zip(labels, records, strict=True)
        if (record.path / rf.REPORT_FILE).is_file()
    )
    ok = sum(r.status == OK for r in summary.records)
    note = (
        f"<p class='note'>{len(records)} jobs: {ok} ok, {summary.failed} failed or "
        f"pruned. Ranked by the final {esc(summary.monitor)} of each job's best "
        "checkpoint (click a header to sort); ECE after temperature scaling.</p>"
    )
    jobs = note + results_table(labels, records, extra)
    if links:
        jobs += f"<p>run pages: {links}</p>"
    if summary.settings:
        settings = (
            f"<p><b>{esc(lead_verdict(summary.settings, summary.monitor))}</b></p>"
            + settings_table(summary.settings, summary.monitor)
        )
    else:
        settings = (
            "<p class='note'>Every job is its own setting (no <code>seed</code> "
            "axis): repeat with <code>seed=0,1,2</code> to see the noise.</p>"
        )
    curve_labels = [
        f"{summary.jobs[i]}: {_short_setting(summary.varying(i))}"[:48] for i in order
    ]
    command = _sweep_command(summary.folder)
    sections = [
        ("jobs", "Jobs", jobs),
        ("settings", "Settings over seeds", settings),
        ("curves", "Curves of all jobs", curves_html(curve_labels, records)),
        ("command", "Command", f"<pre>{esc(command or '(not recorded)')}</pre>"),
    ]
    best = records[0].monitored if records else None
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return page(
        f"Sweep: {len(records)} jobs, best {summary.monitor} "
        f"{metric_text(summary.monitor, best)}",
        f"{summary.folder.resolve()} (summary built {when})",
        sections,
    )


def write_sweep_summary(folder: Path) -> SweepSummary:
    """Write ``summary.csv``, ``summary.html`` (and ``summary_settings.csv`` when
    seeds vary) into the sweep folder, atomically.

    Args:
        folder: The sweep folder.

    Returns:
        The summary written.

    Raises:
        ReportError: If the folder holds no jobs.
    """
    summary = summarize_sweep(folder)
    atomic_write_text(folder / rf.SWEEP_CSV, summary_csv(summary))
    if summary.settings:
        atomic_write_text(folder / rf.SWEEP_SETTINGS_CSV, settings_csv(summary))
    atomic_write_text(folder / rf.SWEEP_HTML, render_summary_html(summary))
    return summary


def _display_value(value: str) -> str:
    """A sampled float with many digits, shortened for reading (the CSV keeps it)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 8 and "." in value else value


def _short_setting(values: dict[str, str]) -> str:
    """``lr=0.001, seed=1``: the last part of each dotted key, where unambiguous."""
    short = {k: k.rsplit(".", 1)[-1] for k in values}
    if len(set(short.values())) < len(short):
        short = {k: k for k in values}
    return ", ".join(f"{short[k]}={_display_value(v)}" for k, v in values.items())


def print_sweep_summary(summary: SweepSummary, console: Console | None = None) -> None:
    """The summary as Rich tables, best first; failed jobs' errors below."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: room for every column
            console.width = max(console.width, 140)
    title = f"Sweep: {len(summary.jobs)} jobs, best {summary.monitor} first"
    table_ = Table(title=title)
    table_.add_column("job", no_wrap=True)
    table_.add_column("setting", min_width=16)
    for column in ("status", "val top-1", "test top-1", "test ECE", "best epoch",
                   "epochs", "time (s)"):  # fmt: skip
        table_.add_column(column, justify="right", no_wrap=True)
    errors = []
    for i in summary.ranked():
        results = summary.records[i].results()
        table_.add_row(
            summary.jobs[i],
            _short_setting(summary.varying(i)),
            str(results["status"]),
            pct(results["val_top1"]),
            pct(results["test_top1"]),
            fmt(results["test_ece"], 3),
            fmt(results["best_epoch"]),
            fmt(results["epochs"]),
            fmt(results["wall_time_s"], 0),
        )
        if results["error"]:
            errors.append(
                f"job {summary.jobs[i]} {results['status']}: {results['error']}"
            )
    console.print(table_)
    for line in errors:
        console.print(line, markup=False, highlight=False)
    if summary.settings:
        settings = Table(title="Settings over seeds (best first)")
        for column in ("setting", "mean \N{PLUS-MINUS SIGN} std", "seeds"):
            settings.add_column(column)
        for s in summary.settings:
            settings.add_row(
                s.label, mean_std_text(summary.monitor, s), ", ".join(s.seeds)
            )
        console.print(settings)
        console.print(lead_verdict(summary.settings, summary.monitor), markup=False)
    console.print(f"sweep summary: {summary.folder / rf.SWEEP_HTML}", markup=False)
