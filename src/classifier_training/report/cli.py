"""``classifier-report``: (re)build the page of a folder, or compare runs.

``classifier-report FOLDER``: a training run folder (``metrics.json``) gets its
``report.html``; a ``classifier-evaluate`` folder (``summary.json``) gets the
evaluation page; a label-audit folder (``label_issues.jsonl``) gets its
``label_issues.html``; a sweep folder (Hydra's ``multirun/<date>/<time>``, a
``classifier-tune`` study) gets ``summary.csv``/``summary.html`` again.

``classifier-report --compare RUN_DIR RUN_DIR ... [-o PAGE]``: one page with the
runs side by side (a sweep folder stands for all its jobs); by default
``SWEEP/compare.html`` for a single sweep, else ``./compare.html``.

Exit status: 0 written, 1 a sweep whose every job failed (its summary is still
written), 2 not a folder a page can be built from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.run_files import (
    LABEL_ISSUES_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
)
from classifier_training.report.compare import build_compare_report
from classifier_training.report.evaluation import build_evaluation_report
from classifier_training.report.label_issues import build_label_issues_report
from classifier_training.report.run import ReportError, build_run_report, read_json
from classifier_training.report.runs import is_sweep_folder
from classifier_training.report.sweep import print_sweep_summary, write_sweep_summary

#: Exit status of a sweep in which no job finished.
ALL_FAILED_EXIT_CODE = 1


def build_report(folder: Path) -> Path:
    """Write the page that fits a run, evaluation or audit folder; returns its path.

    Raises:
        ReportError: If ``folder`` is none of them.
    """
    if not folder.is_dir():
        raise ReportError(f"{folder}: folder not found")
    if (folder / METRICS_FILE).is_file():
        return build_run_report(folder)
    if (folder / LABEL_ISSUES_FILE).is_file():
        return build_label_issues_report(folder)
    summary = read_json(folder / SUMMARY_FILE)
    if summary:
        return build_evaluation_report(folder, summary)
    raise ReportError(
        f"{folder}: neither metrics.json (a training run), summary.json "
        "(a classifier-evaluate folder), label_issues.jsonl (a label audit) nor "
        "job folders (a sweep) found"
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-report``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="classifier-report",
        description="Build report.html of a run or evaluation folder, the review "
        "page of a label-audit folder, the summary of a sweep folder, or "
        "(--compare) one page comparing runs.",
    )
    parser.add_argument(
        "folders",
        type=Path,
        nargs="+",
        metavar="FOLDER",
        help="run, evaluation or sweep folder (several with --compare)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="compare the runs side by side (a sweep folder: all its jobs)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="with --compare: the page to write (default SWEEP/compare.html for "
        "one sweep, else ./compare.html)",
    )
    args = parser.parse_args(argv)

    def run() -> int:
        if args.compare:
            path, comparison = build_compare_report(args.folders, args.output)
            for warning in comparison.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(f"compare page: {path}")
            return 0
        if len(args.folders) > 1 or args.output is not None:
            raise UsageError(
                "several folders or --output need --compare "
                "(classifier-report --compare RUN_DIR RUN_DIR ...)"
            )
        (folder,) = args.folders
        if folder.is_dir() and is_sweep_folder(folder):
            summary = write_sweep_summary(folder)
            print_sweep_summary(summary)
            if summary.all_failed:
                print(
                    f"error: {folder}: every job of the sweep failed", file=sys.stderr
                )
                return ALL_FAILED_EXIT_CODE
            return 0
        path = build_report(folder)
        print(f"report: {path}")
        return 0

    return run_command(run)


if __name__ == "__main__":
    raise SystemExit(main())
