"""``classifier-split POOL --out ROOT``: split a pool of labelled crops by group.

Reads one pool (``annotations.jsonl`` files anywhere below ``POOL``, or class
folders), assigns every row to train, valid or test so that no group crosses
splits (:mod:`classifier_training.core.group_split`) and writes a dataset root in
the JSONL layout::

    ROOT/train/annotations.jsonl   ROOT/train/<image path below POOL>
    ROOT/valid/...                 ROOT/test/...
    ROOT/split_report.json         the per-split table and the settings

Each row keeps its keys and metadata; only ``image`` is rewritten, relative to
its split folder, because image paths may not leave it. Images are hard-linked
(``--link hardlink``, the default; copied where the file system refuses),
copied, or symbolically linked. The root is written in a temporary folder and
renamed into place, so an interrupted run leaves nothing half-written. The same
pool, options and seed give the same files, byte for byte.

Exit codes: 0 written, 2 bad input or a split that cannot be made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.group_split import (
    SplitSummary,
    assign_splits,
    check_ratios,
    summarize,
)
from classifier_training.core.groups import GroupKeyError, require_group_key
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import (
    ANNOTATION_FILE,
    SPLIT_ALIASES,
    DataError,
    Sample,
    detect_layout,
    iter_jsonl_lines,
    read_folder_split,
    read_jsonl_split,
)

LinkMode = Literal["hardlink", "copy", "symlink"]
#: The table and settings written next to the splits.
REPORT_FILE = "split_report.json"
#: Folder written for each split (the reader also accepts ``val/``).
SPLIT_FOLDERS = {split: aliases[0] for split, aliases in SPLIT_ALIASES.items()}


def read_pool(pool: Path, keys: Sequence[str]) -> tuple[list[Sample], str]:
    """The pool's rows and layout (``jsonl`` or ``folder``), checked.

    Raises:
        DataError: For a missing or empty pool, a malformed row (file:line), a
            missing image, or a group key the layout or the rows cannot carry.
    """
    if not pool.is_dir():
        raise DataError(f"{pool}: pool folder does not exist")
    layout = detect_layout(pool)
    if layout == "jsonl":
        samples = read_jsonl_split(pool)
    else:
        if keys:
            raise GroupKeyError(
                f"{pool}: --by {keys[0]} needs JSONL annotations with metadata; "
                "the class-folder layout has none"
            )
        samples = read_folder_split(pool)
    if not samples:
        raise DataError(
            f"{pool}: no rows found (no {ANNOTATION_FILE} below it, no images in "
            "class folders)"
        )
    for key in keys:
        require_group_key(samples, key, str(pool))
    for sample in samples:
        if not sample.image.is_file():
            raise DataError(f"{sample.where}: image file not found: {sample.image}")
    return samples, layout


def _raw_rows(samples: Sequence[Sample]) -> dict[tuple[Path, int], dict[str, Any]]:
    """Each JSONL row as written (every key kept), by ``(file, line)``."""
    rows: dict[tuple[Path, int], dict[str, Any]] = {}
    for source in dict.fromkeys(s.source for s in samples if s.line is not None):
        for line, text in iter_jsonl_lines(source):
            rows[(source, line)] = json.loads(text)
    return rows


def _check_out(out: Path, pool: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds data, or that overlaps the pool."""
    here, there = Path(os.path.abspath(out)), Path(os.path.abspath(pool))
    if here.is_relative_to(there) or there.is_relative_to(here):
        raise UsageError(f"--out {out}: must not be the pool, inside it or above it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(
            f"--out {out}: folder exists and is not empty (use --overwrite to "
            "replace it)"
        )


class _Linker:
    """Places image files: hard link (else copy), copy, or symbolic link."""

    def __init__(self, mode: LinkMode) -> None:
        self.mode = mode
        self.fallback: str | None = None

    def __call__(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.mode == "symlink":
            target.symlink_to(source.resolve())
            return
        if self.mode == "hardlink" and self.fallback is None:
            try:
                os.link(source, target)
                return
            except OSError as error:  # another file system, or no link support
                self.fallback = f"{type(error).__name__}: {error}"
        shutil.copy2(source, target)


def write_splits(
    samples: Sequence[Sample],
    assignment: Sequence[str],
    pool: Path,
    out: Path,
    link: LinkMode,
    report: dict[str, Any],
) -> str | None:
    """Write the dataset root (atomically: a temporary folder renamed into place).

    Args:
        samples: The pool's rows.
        assignment: Split of each row.
        pool: The pool folder.
        out: The dataset root to write.
        link: How images are placed.
        report: Written as ``split_report.json``.

    Returns:
        Why hard links fell back to copies, or ``None`` when they did not.
    """
    raw = _raw_rows(samples)
    base = Path(os.path.abspath(pool))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    linker = _Linker(link)
    try:
        lines: dict[str, list[str]] = {split: [] for split in SPLIT_FOLDERS}
        placed: set[Path] = set()
        for sample, split in zip(samples, assignment, strict=True):
            relative = Path(os.path.abspath(sample.image)).relative_to(base)
            folder = staging / SPLIT_FOLDERS[split]
            if folder / relative not in placed:
                linker(sample.image, folder / relative)
                placed.add(folder / relative)
            row = (
                dict(raw[(sample.source, sample.line)])
                if sample.line is not None
                else {"suffix": sample.label}
            )
            row["image"] = relative.as_posix()
            lines[split].append(json.dumps(row, ensure_ascii=False) + "\n")
        for split, text in lines.items():
            if text:
                annotations = staging / SPLIT_FOLDERS[split] / ANNOTATION_FILE
                annotations.write_text("".join(text), encoding="utf-8")
        atomic_write_json(staging / REPORT_FILE, report)
        if out.is_dir():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return linker.fallback


def print_table(table: Sequence[SplitSummary], keys: Sequence[str]) -> None:
    """The per-split table on stdout."""
    view = Table(title="split by " + (", ".join(keys) if keys else "image"))
    view.add_column("split")
    for name in ("rows", "rows %", "groups", *keys[1:], "classes", "max share diff"):
        view.add_column(name, justify="right")
    total = table[0].rows
    for line in table:
        view.add_row(
            SPLIT_FOLDERS.get(line.split, line.split),
            str(line.rows),
            f"{100 * line.rows / total:.1f}",
            str(line.groups),
            *(str(line.key_groups[key]) for key in keys[1:]),
            str(len(line.classes)),
            f"{line.share_gap:.1f} pt",
        )
    Console(highlight=False, soft_wrap=True).print(view)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-split",
        description="Split a pool of labelled images into train/ valid/ test/ so "
        "that no group (track, game) crosses splits, stratified by label.",
    )
    parser.add_argument(
        "pool", type=Path, help="folder with annotations.jsonl files, or class folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write")
    parser.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="KEY",
        help="group key, a dotted path into metadata (repeatable, coarsest first: "
        "--by game_id --by track_id); the first key's groups never cross splits. "
        "Without it each image is its own group",
    )
    parser.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=[0.8, 0.1, 0.1],
        metavar="R",
        help="shares of train, valid and test (summing to 1; default 0.8 0.1 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument(
        "--link",
        choices=("hardlink", "copy", "symlink"),
        default="hardlink",
        help="how images are placed (hardlink falls back to copy where the file "
        "system refuses links)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out folder"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``classifier-split``.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when the split was written, 2 on bad input.
    """
    args = build_parser().parse_args(argv)
    return run_command(lambda: _split(args))


def _split(args: argparse.Namespace) -> int:
    ratios = check_ratios(args.ratios)
    _check_out(args.out, args.pool, args.overwrite)
    samples, layout = read_pool(args.pool, args.by)
    assignment = assign_splits(samples, args.by, ratios, args.seed)
    table = summarize(samples, assignment, args.by)
    report = {
        "pool": str(args.pool),
        "layout": layout,
        "by": list(args.by),
        "ratios": list(ratios),
        "seed": args.seed,
        "splits": {
            SPLIT_FOLDERS.get(line.split, line.split): line.as_dict() for line in table
        },
    }
    fallback = write_splits(samples, assignment, args.pool, args.out, args.link, report)
    if fallback is not None:
        print(f"warning: hard links not possible ({fallback}); copied", file=sys.stderr)
    print_table(table, args.by)
    print(f"wrote {args.out} ({REPORT_FILE}, {len(samples)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
