"""Rich tables of ``classifier-check-data``'s report, ending with its summary line.

Renders the plain-data report of :func:`classifier_training.check_data.audit`
(the same data ``--json`` prints): splits, class balance, identical images,
groups, near-duplicates, every problem, the verdict and one summary line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from classifier_training.core.readers import display_name

_PAIRS_PRINTED = 20  # most pairs in the text table (all are in --json)
_CLUSTER_FILES = 5  # files listed of each split's largest cluster


def shown_path(path: str | Path, data_root: str | Path) -> str:
    """``path`` relative to the data root where it lies below it (shorter lines).

    Args:
        path: A file.
        data_root: The dataset root.
    """
    try:
        return str(Path(path).relative_to(data_root))
    except ValueError:
        return str(path)


def summary_line(result: Mapping[str, Any]) -> str:
    """The one line that ends the report: what was checked and how long it took."""
    summary = result["summary"]
    parts = [
        f"checked {summary['rows']} row(s), {summary['images_decoded']} image(s) "
        f"decoded ({summary['unreadable_images']} unreadable)",
        f"{summary['identical_groups']} identical-image group(s)",
    ]
    if summary["near_duplicate_pairs"] is not None:
        made = summary["signatures"]
        parts.append(
            f"{summary['near_duplicate_pairs']} near-duplicate pair(s) across splits "
            f"(signatures: {made['computed']} computed, {made['reused']} reused)"
        )
    parts.append("leakage checks: " + ", ".join(summary["leakage_checks"]))
    return "; ".join(parts) + f"; {summary['seconds']:.1f} s"


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
    _print_balance(splits, console)
    if result["leakage"]:
        leak = Table(title="identical images (leakage)")
        for column in ("splits", "files"):
            leak.add_column(column)
        for group in result["leakage"]:
            files = "\n".join(f"{f['split']}: {f['path']}" for f in group["files"])
            leak.add_row(", ".join(group["splits"]), files)
        console.print(leak)
    if "groups" in result:
        _print_groups(result["groups"], console)
    if "near_duplicates" in result:
        _print_near_duplicates(result["near_duplicates"], result["data_root"], console)
    for problem in result["problems"]:
        mark = (
            "[red]error[/]" if problem["severity"] == "error" else "[yellow]warning[/]"
        )
        console.print(f"{mark} {problem['where']}: {problem['message']}", markup=True)
    verdict = "[green]OK[/]" if result["ok"] else "[red]FAILED[/]"
    console.print(
        f"{verdict}: {result['errors']} error(s), {result['warnings']} warning(s)"
    )
    console.print(summary_line(result), markup=False)


def _print_balance(splits: Mapping[str, Any], console: Console) -> None:
    empty = display_name("")
    names = sorted(
        {c for info in splits.values() for c in info["classes"]},
        key=lambda name: "" if name == empty else name,  # as in class_to_idx
    )
    if not names:
        return
    balance = Table(title="rows per class")
    balance.add_column("class")
    for split in splits:
        balance.add_column(split, justify="right")
    for name in names:
        balance.add_row(name, *(str(splits[s]["classes"].get(name, 0)) for s in splits))
    console.print(balance)


def _print_groups(groups: Mapping[str, Any], console: Console) -> None:
    table = Table(title=f"groups by {groups['key']}")
    for column in ("split", "rows", "groups", "without key", "frames min/median/max"):
        table.add_column(column, justify="left" if column == "split" else "right")
    table.add_column("label conflicts", justify="right")
    for split, info in groups["splits"].items():
        frames = info["frames_per_group"]
        table.add_row(
            split,
            str(info["rows"]),
            str(info["groups"]),
            str(info["rows_without_key"]),
            f"{frames['min']}/{frames['median']:g}/{frames['max']}",
            str(sum(c["split"] == split for c in groups["conflicts"])),
        )
    console.print(table)
    if groups["leaks"]:
        leaks = Table(title=f"{groups['key']} groups in several splits (leakage)")
        for column in ("group", "rows per split", "first row in each"):
            leaks.add_column(column)
        for leak in groups["leaks"]:
            leaks.add_row(
                leak["value"],
                ", ".join(f"{s}: {n}" for s, n in leak["rows"].items()),
                "\n".join(leak["first"].values()),
            )
        console.print(leaks)


def _print_near_duplicates(
    near: Mapping[str, Any], data_root: str, console: Console
) -> None:
    pairs = near["cross_split"]
    if pairs:
        table = Table(
            title=f"near-duplicates across splits (score >= {near['threshold']})"
        )
        table.add_column("score", justify="right")
        for column in ("file", "near-duplicate of"):
            table.add_column(f"{column} (in {data_root})", overflow="fold")
        for pair in pairs[:_PAIRS_PRINTED]:
            query, reference = pair["files"]
            table.add_row(
                f"{pair['score']:.3f}",
                shown_path(query["path"], data_root),
                shown_path(reference["path"], data_root),
            )
        console.print(table)
        if len(pairs) > _PAIRS_PRINTED:
            console.print(
                f"... and {len(pairs) - _PAIRS_PRINTED} more pair(s) (all in --json)"
            )
        if near["figure"]:
            console.print(f"pairs drawn in {near['figure']}", markup=False)
    for split, info in near["within_split"].items():
        if info["clusters"]:
            largest = info["largest"]
            listed = ", ".join(
                shown_path(p, data_root) for p in largest[:_CLUSTER_FILES]
            )
            more = (
                f" and {len(largest) - _CLUSTER_FILES} more"
                if len(largest) > _CLUSTER_FILES
                else ""
            )
            console.print(
                f"info: {split}: {info['clusters']} near-duplicate cluster(s) holding "
                f"{info['images']} images; the largest has {len(largest)}: "
                f"{listed}{more}",
                markup=False,
            )
