"""``classifier-check-data DATA_ROOT``: audit a dataset before training on it.

The same checks as the start-up validation, plus a full decode of every image
(so truncated files are found) and a **leakage** report:

* identical files (decoded pixels) across train/valid/test: an error, evaluation
  would be optimistic; within one split: a warning;
* **near-duplicates** across splits (the same picture shifted, rescaled, re-lit or
  re-encoded; :mod:`~classifier_training.core.near_duplicates`, ``--threshold``):
  a warning with every pair listed (``near_duplicates.png`` in ``--out``), since
  the search is a measured method with rare false pairs (identical images are
  left to the check above); clusters within a split are information;
* with ``--group-by KEY``: a group value in several splits is an error; per
  split, groups, frames per group and label conflicts inside a group (warnings).

Signatures are computed in the decode pass and stored by file content in the
cache folder (``--cache-dir``, default ``DATA_ROOT/.cache``), so a rerun, and
training, reuse them. Prints rich tables ending with one summary line, or JSON
with ``--json`` (the summary line then goes to stderr).

Exit codes: 0 clean (warnings allowed), 1 errors found, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.group_audit import group_sizes, label_conflicts
from classifier_training.core.groups import check_split_groups
from classifier_training.core.image_io import load_image
from classifier_training.core.leakage import (
    NearDuplicate,
    cross_split_near_duplicates,
    group_leaks,
    within_split_clusters,
)
from classifier_training.core.near_duplicates import DEFAULT_THRESHOLD
from classifier_training.core.readers import Problem, display_name
from classifier_training.core.signature_cache import SignatureCache, cache_folder
from classifier_training.core.validation import (
    DataReport,
    describe_counts,
    leakage_groups,
    validate_dataset,
)
from classifier_training.plots.data_check import print_report, shown_path, summary_line
from classifier_training.plots.figures import save_image
from classifier_training.plots.pairs import PairTile, render_pairs

#: The near-duplicate figure written into ``--out``.
NEAR_DUPLICATES_PNG = "near_duplicates.png"
_PAIRS_DRAWN = 48  # most pairs in the figure


def audit(
    data_root: Path,
    workers: int | None = None,
    show_progress: bool = False,
    *,
    group_key: str | None = None,
    near_duplicates: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
    out: Path | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every check on ``data_root`` and return the report as plain data.

    Args:
        data_root: Dataset root.
        workers: Threads for the decode pass.
        show_progress: Draw a progress bar on stderr.
        group_key: Group key (dotted path into ``metadata``) for the group
            report and the group leakage check.
        near_duplicates: Search near-duplicates across and within splits.
        threshold: Lowest near-duplicate score reported.
        out: Folder for ``near_duplicates.png`` (not drawn when ``None``).
        cache_dir: Folder of the signature store (default ``DATA_ROOT/.cache``).

    Returns:
        JSON-serialisable report: ``splits``, ``problems``, ``leakage``,
        ``near_duplicates``, ``groups`` (with a group key), ``errors`` and
        ``warnings`` counts, ``ok`` and ``summary``.

    Raises:
        GroupKeyError: For a group key on the class-folder layout, or one no
            row carries.
    """
    started = time.perf_counter()
    signatures = (
        SignatureCache(cache_folder(data_root, cache_dir)) if near_duplicates else None
    )
    report = _validate(data_root, workers, show_progress, signatures)
    result = _as_dict(report)
    extra: list[Problem] = []
    if group_key is not None and report.rows:
        check_split_groups(report.rows, report.layouts, report.split_dirs, group_key)
        result["groups"] = _groups(report, group_key, extra)
    if signatures is not None:
        result["near_duplicates"] = _near_duplicates(
            report, signatures, threshold, out, extra
        )
    _add_problems(result, extra)
    result["summary"] = _summary(report, result, group_key, started)
    return result


def _validate(
    data_root: Path,
    workers: int | None,
    show_progress: bool,
    signatures: SignatureCache | None,
) -> DataReport:
    with Progress(
        TextColumn("decoding images"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("decode", total=None)
        return validate_dataset(
            data_root,
            decode=True,
            hash_content=True,
            unknown_labels=True,
            workers=workers,
            progress=lambda n: progress.advance(task, n),
            on_images_found=lambda n: progress.update(task, total=n),
            signatures=signatures,
        )


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
    result = {
        "data_root": str(report.data_root),
        "layouts": report.layouts,
        "splits": describe_counts(report.rows),
        "bad_images": len(report.bad_images),
        "problems": [],
        "leakage": leakage,
    }
    _add_problems(result, problems)
    return result


def _add_problems(result: dict[str, Any], problems: Sequence[Problem]) -> None:
    """Append problems and recount errors, warnings and the verdict."""
    result["problems"].extend(
        {"severity": p.severity, "where": p.where, "message": p.message}
        for p in problems
    )
    errors = sum(p["severity"] == "error" for p in result["problems"])
    result["errors"] = errors
    result["warnings"] = len(result["problems"]) - errors
    result["ok"] = errors == 0


def _groups(report: DataReport, key: str, problems: list[Problem]) -> dict[str, Any]:
    """Group sizes and conflicts per split, and groups in several splits."""
    leaks = group_leaks(report.rows, key)
    for leak in leaks:
        where = ", ".join(
            f"{split} ({leak.rows[split]} row(s) from {leak.first[split]})"
            for split in leak.rows
        )
        first = next(iter(leak.first.values()))
        problems.append(
            Problem(first, f"group {key}={leak.value!r} is in several splits: {where}")
        )
    conflicts = label_conflicts(report.rows, key)
    for conflict in conflicts:
        labels = ", ".join(f"{label!r} x{n}" for label, n in conflict.labels.items())
        problems.append(
            Problem(
                conflict.disagreeing[0],
                f"label conflict in {conflict.split} group {key}={conflict.group!r} "
                f"({labels}): rows not {display_name(conflict.majority)!r}: "
                + ", ".join(conflict.disagreeing),
                "warning",
            )
        )
    return {
        "key": key,
        "splits": {s: g.as_dict() for s, g in group_sizes(report.rows, key).items()},
        "conflicts": [c.as_dict() for c in conflicts],
        "leaks": [leak.as_dict() for leak in leaks],
    }


def _near_duplicates(
    report: DataReport,
    signatures: SignatureCache,
    threshold: float,
    out: Path | None,
    problems: list[Problem],
) -> dict[str, Any]:
    """Cross-split pairs and within-split clusters from the stored signatures."""
    images: dict[str, list[Path]] = {}
    stacked = {}
    for split, samples in report.rows.items():
        checks = [
            report.images[path] for path in dict.fromkeys(s.image for s in samples)
        ]
        readable = [c for c in checks if c.content_digest is not None]
        images[split] = [c.path for c in readable]
        stacked[split] = signatures.stack([str(c.content_digest) for c in readable])
    try:
        signatures.save()
    except OSError as error:  # read-only data: the next run computes them again
        print(f"note: signatures not stored ({error})", file=sys.stderr)
    pairs = [  # identical pixels are reported above, as errors
        pair
        for pair in cross_split_near_duplicates(images, stacked, threshold)
        if report.images[pair.query].pixel_hash
        != report.images[pair.reference].pixel_hash
    ]
    if pairs:
        counts = ", ".join(
            f"{query}-{reference}: {n}" for (query, reference), n in _by_splits(pairs)
        )
        problems.append(
            Problem(
                str(report.data_root),
                f"{len(pairs)} near-duplicate pair(s) across splits ({counts}; "
                f"score >= {threshold}); evaluation may be optimistic",
                "warning",
            )
        )
    figure = None
    if out is not None and pairs:
        figure = str(
            _draw(pairs, out / NEAR_DUPLICATES_PNG, threshold, report.data_root)
        )
    clusters = within_split_clusters(images, stacked, threshold)
    return {
        "threshold": threshold,
        "cross_split": [pair.as_dict() for pair in pairs],
        "within_split": {
            split: {
                "clusters": len(found),
                "images": sum(len(c) for c in found),
                "largest": [str(p) for p in found[0]] if found else [],
            }
            for split, found in clusters.items()
        },
        "signatures": {
            "computed": signatures.computed,
            "reused": signatures.reused,
            "store": str(signatures.file),
        },
        "figure": figure,
    }


def _by_splits(pairs: Sequence[NearDuplicate]) -> list[tuple[tuple[str, str], int]]:
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        key = (pair.query_split, pair.reference_split)
        counts[key] = counts.get(key, 0) + 1
    return list(counts.items())


def _draw(
    pairs: Sequence[NearDuplicate], file: Path, threshold: float, data_root: Path
) -> Path:
    tiles = [
        PairTile(
            left=np.asarray(load_image(pair.query)),
            right=np.asarray(load_image(pair.reference)),
            score=pair.score,
            captions=(
                shown_path(pair.query, data_root),
                shown_path(pair.reference, data_root),
            ),
        )
        for pair in pairs[:_PAIRS_DRAWN]
    ]
    shown = f"{len(tiles)} of {len(pairs)}" if len(pairs) > len(tiles) else len(pairs)
    title = f"near-duplicates across splits (score >= {threshold}): {shown}"
    return save_image(render_pairs(tiles, title), file)


def _summary(
    report: DataReport, result: Mapping[str, Any], key: str | None, started: float
) -> dict[str, Any]:
    checks = ["identical images"]
    near = result.get("near_duplicates")
    if near is not None:
        checks.append(f"near-duplicates (score >= {near['threshold']})")
    if key is not None:
        checks.append(f"groups by {key}")
    return {
        "rows": sum(len(rows) for rows in report.rows.values()),
        "images_decoded": len(report.images) - len(report.bad_images),
        "unreadable_images": len(report.bad_images),
        "identical_groups": len(result["leakage"]),
        "near_duplicate_pairs": None if near is None else len(near["cross_split"]),
        "signatures": None if near is None else near["signatures"],
        "leakage_checks": checks,
        "seconds": round(time.perf_counter() - started, 2),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-check-data",
        description="Audit a dataset: annotations, every image decoded, class "
        "balance and leakage (identical and near-duplicate images across "
        "splits, groups in several splits).",
    )
    parser.add_argument("data_root", type=Path, help="folder with train/ valid/ test/")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    parser.add_argument(
        "--workers", type=int, default=None, help="threads for the decode pass"
    )
    parser.add_argument(
        "--group-by",
        metavar="KEY",
        default=None,
        help="group key (dotted path into metadata, e.g. track_id): groups per "
        "split, label conflicts, groups found in several splits (an error)",
    )
    parser.add_argument(
        "--near-duplicates",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="search near-duplicate images across and within splits (default: on)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="lowest near-duplicate score reported, in (0, 1]; higher finds fewer, "
        f"closer pairs (default {DEFAULT_THRESHOLD}; measured in benchmarks/README.md)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder for {NEAR_DUPLICATES_PNG}"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where near-duplicate signatures are stored (default DATA_ROOT/.cache, "
        "as data.cache_dir)",
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
    if not 0 < args.threshold <= 1:
        raise UsageError(f"--threshold must be in (0, 1], got {args.threshold}")
    result = audit(
        args.data_root,
        args.workers,
        show_progress=not args.json,
        group_key=args.group_by,
        near_duplicates=args.near_duplicates,
        threshold=args.threshold,
        out=args.out,
        cache_dir=args.cache_dir,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        print(summary_line(result), file=sys.stderr)
    else:
        print_report(result, Console(highlight=False, soft_wrap=True))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
