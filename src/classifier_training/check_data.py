"""``classifier-check-data DATA_ROOT``: audit a dataset before training on it.

The same checks as the start-up validation, plus a full decode of every image
(so truncated files are found) and a **leakage** report: distinct files whose
decoded pixels are identical, across train/valid/test (an error: evaluation
would be optimistic) or within one split (a warning). Prints rich tables, or
JSON with ``--json``.

Exit codes: 0 clean (warnings allowed), 1 errors found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.readers import Problem, display_name
from classifier_training.core.validation import (
    DataReport,
    describe_counts,
    leakage_groups,
    validate_dataset,
)


def audit(
    data_root: Path, workers: int | None = None, show_progress: bool = False
) -> dict[str, Any]:
    """Run every check on ``data_root`` and return the report as plain data.

    Args:
        data_root: Dataset root.
        workers: Threads for the decode pass.
        show_progress: Draw a progress bar on stderr.

    Returns:
        JSON-serialisable report: ``splits``, ``problems``, ``leakage``,
        ``errors`` and ``warnings`` counts and ``ok``.
    """
    console = Console(stderr=True)
    with Progress(
        TextColumn("decoding images"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("decode", total=None)
        report = validate_dataset(
            data_root,
            decode=True,
            hash_content=True,
            unknown_labels=True,
            workers=workers,
            progress=lambda n: progress.advance(task, n),
            on_images_found=lambda n: progress.update(task, total=n),
        )
    return _as_dict(report)


def _as_dict(report: DataReport) -> dict[str, Any]:
    leakage = leakage_groups(report.rows, report.images)
    problems = list(report.problems)
    for group in leakage:
        files = ", ".join(f"{f['split']}:{f['path']}" for f in group["files"])
        if group["cross_split"]:
            text = f"identical images across splits {group['splits']}: {files}"
            problems.append(Problem(group["files"][0]["path"], text, "error"))
        else:
            text = f"identical images within {group['splits'][0]}: {files}"
            problems.append(Problem(group["files"][0]["path"], text, "warning"))
    errors = sum(p.severity == "error" for p in problems)
    return {
        "data_root": str(report.data_root),
        "layouts": report.layouts,
        "splits": describe_counts(report.rows),
        "bad_images": len(report.bad_images),
        "problems": [
            {"severity": p.severity, "where": p.where, "message": p.message}
            for p in problems
        ],
        "leakage": leakage,
        "errors": errors,
        "warnings": len(problems) - errors,
        "ok": errors == 0,
    }


def print_report(result: dict[str, Any], console: Console) -> None:
    """Render the audit as rich tables."""
    splits: dict[str, Any] = result["splits"]
    table = Table(title=f"dataset {result['data_root']}")
    for column in ("split", "layout", "rows", "images", "classes"):
        table.add_column(
            column, justify="left" if column in ("split", "layout") else "right"
        )
    for split, info in splits.items():
        table.add_row(
            split,
            result["layouts"].get(split, "?"),
            str(info["rows"]),
            str(info["images"]),
            str(len(info["classes"])),
        )
    console.print(table)
    empty = display_name("")
    names = sorted(
        {c for info in splits.values() for c in info["classes"]},
        key=lambda name: "" if name == empty else name,  # as in class_to_idx
    )
    if names:
        balance = Table(title="rows per class")
        balance.add_column("class")
        for split in splits:
            balance.add_column(split, justify="right")
        for name in names:
            balance.add_row(
                name,
                *(str(splits[s]["classes"].get(name, 0)) for s in splits),
            )
        console.print(balance)
    if result["leakage"]:
        leak = Table(title="identical images (leakage)")
        for column in ("splits", "files"):
            leak.add_column(column)
        for group in result["leakage"]:
            files = "\n".join(f"{f['split']}: {f['path']}" for f in group["files"])
            leak.add_row(", ".join(group["splits"]), files)
        console.print(leak)
    for problem in result["problems"]:
        mark = (
            "[red]error[/]" if problem["severity"] == "error" else "[yellow]warning[/]"
        )
        console.print(f"{mark} {problem['where']}: {problem['message']}", markup=True)
    verdict = "[green]OK[/]" if result["ok"] else "[red]FAILED[/]"
    console.print(
        f"{verdict}: {result['errors']} error(s), {result['warnings']} warning(s)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-check-data",
        description="Audit a dataset: annotations, every image decoded, class "
        "balance and leakage (identical images across/within splits).",
    )
    parser.add_argument("data_root", type=Path, help="folder with train/ valid/ test/")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    parser.add_argument(
        "--workers", type=int, default=None, help="threads for the decode pass"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``classifier-check-data``.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when no error was found, 1 on errors, 2 on bad usage.
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _check(args))


def _check(args: argparse.Namespace) -> int:
    if not args.data_root.is_dir():
        raise UsageError(f"{args.data_root}: data root folder does not exist")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be >= 1")
    result = audit(args.data_root, args.workers, show_progress=not args.json)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result, Console(highlight=False, soft_wrap=True))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
