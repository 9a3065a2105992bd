"""``classifier-report RUN_DIR``: (re)build the ``report.html`` of a folder.

A training run folder (``metrics.json``) gets the run page; a
``classifier-evaluate`` folder (``summary.json``) gets the evaluation page.

Exit status: 0 written, 2 not a folder a report can be built from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classifier_training.core.errors import run_command
from classifier_training.core.run_files import METRICS_FILE, SUMMARY_FILE
from classifier_training.report.evaluation import build_evaluation_report
from classifier_training.report.run import ReportError, build_run_report, read_json


def build_report(folder: Path) -> Path:
    """Write the page that fits ``folder``; returns its path.

    Raises:
        ReportError: If ``folder`` is neither a run nor an evaluation folder.
    """
    if not folder.is_dir():
        raise ReportError(f"{folder}: folder not found")
    if (folder / METRICS_FILE).is_file():
        return build_run_report(folder)
    summary = read_json(folder / SUMMARY_FILE)
    if summary:
        return build_evaluation_report(folder, summary)
    raise ReportError(
        f"{folder}: neither metrics.json (a training run) nor summary.json "
        "(a classifier-evaluate folder) found"
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-report``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="classifier-report",
        description="Build report.html for a training run or evaluation folder.",
    )
    parser.add_argument("folder", type=Path, help="run folder or evaluation folder")
    args = parser.parse_args(argv)

    def run() -> int:
        path = build_report(args.folder)
        print(f"report: {path}")
        return 0

    return run_command(run)


if __name__ == "__main__":
    raise SystemExit(main())
