"""The audit's findings from the folds' probabilities, and where they are written.

Confident learning's thresholds come from the train rows' out-of-fold
probabilities; the val/test rows (the fold models' mean, since none of them
trained on those rows) are judged by the same thresholds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from classifier_training.audit.issues import (
    Flag,
    flag_split,
    pair_summary,
    rank,
    write_issues,
)
from classifier_training.audit.plan import AuditPlan
from classifier_training.audit.runner import FoldResult
from classifier_training.core import run_files as rf
from classifier_training.core.confident_learning import REASONS, class_thresholds
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import display_name
from classifier_training.core.row_refs import write_row_list
from classifier_training.report.html import pct
from classifier_training.report.label_issues import build_label_issues_report

#: Class pairs shown in the terminal (all are in ``summary.json``).
TERMINAL_PAIRS = 20


@dataclass(frozen=True)
class Findings:
    """The flagged rows and what they were judged against.

    Attributes:
        flags: The flagged rows of the audited splits, most suspicious first.
        audited: Per audited split, the rows confident learning judged.
        thresholds: Per class, its confident-learning threshold.
        rows_per_label: Audited rows per given label (all audited splits).
        unreadable: Rows per split whose image could not be read.
    """

    flags: list[Flag]
    audited: dict[str, int]
    thresholds: dict[str, float]
    rows_per_label: Counter[str]
    unreadable: dict[str, int]


def _judged(plan: AuditPlan, split: str, probs: npt.NDArray[np.float64]) -> Any:
    finite = np.isfinite(probs).all(axis=1)
    if split == "train":
        return plan.auditable & finite
    known = set(plan.class_names)
    return finite & np.array([s.label in known for s in plan.rows[split]], bool)


def find_findings(
    plan: AuditPlan, probs: dict[str, npt.NDArray[np.float64]]
) -> Findings:
    """Flag the rows of the audited splits.

    Args:
        plan: The audit plan.
        probs: Per split, calibrated probabilities (:func:`runner.combine`).

    Returns:
        The findings.
    """
    index = {name: i for i, name in enumerate(plan.class_names)}
    train_ok = _judged(plan, "train", probs["train"])
    labels = np.array([index[s.label] for s in plan.rows["train"]], dtype=np.int64)
    thresholds = class_thresholds(probs["train"][train_ok], labels[train_ok])
    flags: list[Flag] = []
    audited: dict[str, int] = {}
    rows_per_label: Counter[str] = Counter()
    for split in plan.splits:
        judged = _judged(plan, split, probs[split])
        samples = plan.rows[split]
        audited[split] = int(judged.sum())
        rows_per_label.update(
            s.label for s, ok in zip(samples, judged, strict=True) if ok
        )
        flags += flag_split(
            split,
            samples,
            np.nan_to_num(probs[split], nan=0.0),
            plan.class_names,
            judged,
            thresholds,
            plan.data_root,
            groups=plan.groups(split),
            fold_of=plan.fold_of.tolist() if split == "train" else None,
        )
    return Findings(
        flags=rank(flags),
        audited=audited,
        thresholds={
            name: float(t) for name, t in zip(plan.class_names, thresholds, strict=True)
        },
        rows_per_label=rows_per_label,
        unreadable={
            split: int((~np.isfinite(p).all(axis=1)).sum())
            for split, p in probs.items()
        },
    )


def summary_of(
    plan: AuditPlan,
    findings: Findings,
    results: list[FoldResult],
    wall_time_s: float,
) -> dict[str, Any]:
    """What ``summary.json`` holds: settings, counts, class pairs, folds."""
    flags = findings.flags
    per_split = Counter(f.split for f in flags)
    notes = [c.message(plan.folds) for c in plan.coverage]
    notes += [
        f"{split}: {n} row(s) not audited (image not readable)"
        for split, n in findings.unreadable.items()
        if n
    ]
    return {
        "data_root": str(plan.data_root),
        "config_name": plan.config_name,
        "overrides": list(plan.overrides),
        "folds": plan.folds,
        "seed": plan.seed,
        "group_key": plan.group_key,
        "splits": list(plan.splits),
        "rows": {
            split: {
                "rows": len(plan.rows[split]),
                "audited": findings.audited[split],
                "flagged": per_split.get(split, 0),
            }
            for split in plan.splits
        },
        "flagged": len(flags),
        "reasons": {
            reason: sum(f.reason == reason for f in flags) for reason in REASONS
        },
        "pairs": pair_summary(flags, findings.rows_per_label),
        "thresholds": findings.thresholds,
        "not_audited": notes,
        "fold_runs": [
            {k: v for k, v in r.record.items() if k != "fingerprint"} for r in results
        ],
        "wall_time_s": round(wall_time_s, 1),
    }


def write_outputs(plan: AuditPlan, findings: Findings, summary: dict[str, Any]) -> None:
    """``label_issues.jsonl``, ``flagged_train_rows.txt``, ``summary.json`` and
    ``label_issues.html`` in the audit folder."""
    write_issues(plan.out / rf.LABEL_ISSUES_FILE, findings.flags)
    write_row_list(
        plan.out / rf.FLAGGED_ROWS_FILE,
        (f.ref for f in findings.flags if f.split == "train"),
        header="train rows flagged by classifier-audit-labels; retrain without "
        f"them with data.exclude_rows=<this file> (data root {plan.data_root})",
    )
    atomic_write_json(plan.out / rf.SUMMARY_FILE, summary)
    build_label_issues_report(plan.out)


def print_summary(console: Console, plan: AuditPlan, summary: dict[str, Any]) -> None:
    """The class-pair table and the counts, in the terminal."""
    pairs = summary["pairs"]
    table = Table(title=f"Flagged rows by class pair ({len(pairs)} pairs)")
    for column in ("given", "suggested", "rows", "share of given", "reasons"):
        table.add_column(column, justify="right" if column in ("rows",) else "left")
    for pair in pairs[:TERMINAL_PAIRS]:
        table.add_row(
            display_name(pair["given"]),
            display_name(pair["suggested"]),
            str(pair["count"]),
            pct(pair["share_of_given"]),
            ", ".join(f"{k} {v}" for k, v in pair["reasons"].items()),
        )
    if pairs:
        console.print(table)
    for split, counts in summary["rows"].items():
        console.print(
            f"{split}: {counts['flagged']} of {counts['audited']} audited rows "
            f"flagged ({counts['rows']} rows)"
        )
    reasons = ", ".join(f"{k} {v}" for k, v in summary["reasons"].items() if v)
    if reasons:
        console.print(f"reasons: {reasons}")
    console.print(f"review page: {plan.out / rf.LABEL_ISSUES_HTML}")
    console.print(f"flagged rows: {plan.out / rf.LABEL_ISSUES_FILE}")
