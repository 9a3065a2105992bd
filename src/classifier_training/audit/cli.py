"""``classifier-audit-labels``: find the train (and val/test) rows whose label is
likely wrong.

::

    classifier-audit-labels DATA_ROOT --out AUDIT [--folds 4] [--splits train,val,test]
        [--group-by track_id] [--config-name train_demo] [overrides ...]
        [--write-clean CLEAN_ROOT [--relabel]]

Trains ``--folds`` models with the recipe (``classifier-train``'s, overrides
included), each on all train rows but one fold's; every train row is predicted
by the model that did not train on it, with its calibrated confidences, and
confident learning ranks the rows whose label the model confidently disagrees
with. Writes ``AUDIT/label_issues.jsonl`` (most suspicious first),
``label_issues.html`` (the review page), ``summary.json`` (per class pair) and
``flagged_train_rows.txt`` (``data.exclude_rows=`` it to retrain without them).
Run the same command again to resume: finished folds are reused.

Exit status: 0 done (flagged rows or not), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from classifier_training.audit.clean import check_clean_target, write_clean
from classifier_training.audit.plan import DEFAULT_CONFIG, build_plan, parse_splits
from classifier_training.audit.results import (
    find_findings,
    print_summary,
    summary_of,
    write_outputs,
)
from classifier_training.audit.runner import combine, run_fold
from classifier_training.core.errors import UsageError, run_command

INTERRUPTED_EXIT_CODE = 130


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="classifier-audit-labels",
        description="Find likely wrong labels: train K fold models with the "
        "classifier-train recipe, predict every train row by the model that did "
        "not see it, rank the rows by confident learning.",
        epilog="Example: classifier-audit-labels data/synthetic-jersey --out audit "
        "--config-name train_demo trainer.max_epochs=6",
    )
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of the recipe (key=value)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="audit folder (resumed if it exists)"
    )
    parser.add_argument(
        "--folds", type=int, default=4, help="fold models to train (default 4)"
    )
    parser.add_argument(
        "--splits",
        default="train",
        help="splits to audit, comma-separated (train,val,test; default train); "
        "val/test rows are judged by the fold models' mean",
    )
    parser.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help="metadata key of a track (e.g. track_id): a track's rows share a "
        "fold, and rows that disagree with their track are flagged "
        "(default: the recipe's data.group_key)",
    )
    parser.add_argument(
        "--config-name", default=DEFAULT_CONFIG, help="the recipe (classifier-train's)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the fold assignment"
    )
    parser.add_argument(
        "--write-clean",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write a copy of DATA_ROOT without the flagged rows",
    )
    parser.add_argument(
        "--relabel",
        action="store_true",
        help="with --write-clean: give flagged rows the suggested label instead",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-audit-labels``; returns the exit status."""
    args = build_parser().parse_intermixed_args(argv)

    def run() -> int:
        started = time.perf_counter()
        console = Console()
        if args.relabel and args.write_clean is None:
            raise UsageError("--relabel needs --write-clean DIR")
        plan = build_plan(
            args.data_root,
            args.out,
            config_name=args.config_name,
            overrides=args.overrides,
            folds=args.folds,
            splits=parse_splits(args.splits),
            group_by=args.group_by,
            seed=args.seed,
        )
        if args.write_clean is not None:
            check_clean_target(plan.data_root, args.write_clean)
        for note in plan.coverage:
            print(f"warning: {note.message(plan.folds)}", file=sys.stderr)
        results = [run_fold(plan, fold, console) for fold in range(plan.folds)]
        findings = find_findings(plan, combine(plan, results))
        summary = summary_of(plan, findings, results, time.perf_counter() - started)
        write_outputs(plan, findings, summary)
        print_summary(console, plan, summary)
        if args.write_clean is not None:
            changed = write_clean(
                plan.data_root, args.write_clean, findings.flags, args.relabel
            )
            what = "relabelled" if args.relabel else "left out"
            console.print(
                f"clean copy: {args.write_clean} ({sum(changed.values())} row(s) "
                f"{what}: {dict(changed)})"
            )
        return 0

    try:
        return run_command(run)
    except KeyboardInterrupt:
        print(
            "interrupted; run the same command again to resume (finished folds "
            "are reused)",
            file=sys.stderr,
        )
        return INTERRUPTED_EXIT_CODE


if __name__ == "__main__":
    raise SystemExit(main())
