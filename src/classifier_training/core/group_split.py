"""Split one pool of labelled rows into train/val/test by group, stratified by label.

Frames of one track (one game, one camera) are near-copies: split at random, the
test split holds copies of training images. Here the unit that never crosses
splits is a *group* named by one or more keys (``classifier-split --by``):

* a row's unit is its value of the **first** key; a row without it falls back to
  the next key it carries (a track without a game id is still kept whole), and a
  row without any key is its own unit;
* rows that show the same image file are one unit too, whatever their keys say
  (an image in two splits is leakage by definition).

Units are dealt into folds by scikit-learn's ``StratifiedGroupKFold`` (label
stratified as far as the groups allow: a group is indivisible), and folds into
splits in proportion to the ratios: ``0.8 0.1 0.1`` is 8, 1 and 1 of 10 folds.
Same rows, keys, ratios and seed give the same split.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from classifier_training.core.errors import ClassifierError
from classifier_training.core.groups import group_of, group_value
from classifier_training.core.readers import SPLITS, Sample, display_name

#: Most folds the ratios are rounded to (ratios are kept to 1 % at worst).
MAX_FOLDS = 100
_RATIO_TOLERANCE = 1e-6
_GOOD_ENOUGH = 0.005  # largest share error of the fold count chosen

Ints = np.ndarray[Any, np.dtype[np.int64]]


class SplitError(ClassifierError):
    """The pool cannot be split as asked (too few groups, a class left out)."""


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Ratios of train, val and test (test may be 0, or left out).

    Args:
        ratios: Two or three non-negative shares summing to 1.

    Returns:
        Three shares, test ``0.0`` when only two were given.

    Raises:
        SplitError: Naming what is wrong with them.
    """
    if len(ratios) not in (2, 3):
        raise SplitError(
            f"--ratios: expected 2 or 3 values (train valid [test]), got {len(ratios)}"
        )
    values = (*ratios, 0.0) if len(ratios) == 2 else tuple(ratios)
    if any(not math.isfinite(r) or r < 0 for r in values):
        raise SplitError(f"--ratios: shares must be >= 0, got {list(ratios)}")
    if abs(sum(values) - 1.0) > _RATIO_TOLERANCE:
        raise SplitError(
            f"--ratios {' '.join(f'{r:g}' for r in ratios)}: shares sum to "
            f"{sum(values):g}, not 1"
        )
    if values[0] == 0 or values[1] == 0:
        raise SplitError("--ratios: train and valid need a share above 0")
    return values


def fold_counts(ratios: Sequence[float], units: int) -> tuple[int, ...]:
    """Folds per split: the fewest folds that express the ratios to half a point.

    Args:
        ratios: Shares of train, val, test (from :func:`check_ratios`).
        units: Units in the pool (no more folds than units).

    Returns:
        Folds of each split; a split with a share above 0 gets one at least.
    """
    wanted = sum(r > 0 for r in ratios)
    best: tuple[float, tuple[int, ...]] | None = None
    for total in range(wanted, max(wanted, min(MAX_FOLDS, units)) + 1):
        counts = _apportion(ratios, total)
        error = max(abs(c / total - r) for c, r in zip(counts, ratios, strict=True))
        if best is None or error < best[0]:
            best = (error, counts)
        if error <= _GOOD_ENOUGH:
            break
    assert best is not None
    return best[1]


def _apportion(ratios: Sequence[float], total: int) -> tuple[int, ...]:
    """``total`` folds: one per share above 0, the rest to the most short-changed."""
    counts = [int(r > 0) for r in ratios]
    for _ in range(total - sum(counts)):
        index = max(
            (i for i, r in enumerate(ratios) if r > 0),
            key=lambda i: ratios[i] * total - counts[i],
        )
        counts[index] += 1
    return tuple(counts)


def split_units(samples: Sequence[Sample], keys: Sequence[str]) -> list[int]:
    """The unit of each row: by the first key it carries, joined by shared images.

    Args:
        samples: The pool's rows.
        keys: Group keys, coarsest first (empty: each image is a unit).

    Returns:
        A unit number per row (numbered in order of first appearance).
    """
    unit_ids: dict[str, int] = {}
    image_ids: dict[str, int] = {}
    rows_unit, rows_image = [], []
    for sample in samples:
        rows_unit.append(unit_ids.setdefault(_unit_name(sample, keys), len(unit_ids)))
        rows_image.append(image_ids.setdefault(str(sample.image), len(image_ids)))
    # units and images are nodes; a row links its unit to its image
    count = len(unit_ids) + len(image_ids)
    edges = np.ones(len(samples), dtype=np.int8)
    graph = coo_array(
        (edges, (np.array(rows_unit), np.array(rows_image) + len(unit_ids))),
        shape=(count, count),
    )
    _, component = connected_components(graph, directed=False)
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(component[u]), len(renumber)) for u in rows_unit]


def _unit_name(sample: Sample, keys: Sequence[str]) -> str:
    for depth, key in enumerate(keys):
        value = group_value(sample, key)
        if value is not None:
            return f"{depth}:{value}"
    return group_of(sample, None)


def assign_splits(
    samples: Sequence[Sample],
    keys: Sequence[str],
    ratios: Sequence[float],
    seed: int,
) -> list[str]:
    """The split (``train``/``val``/``test``) of each row.

    Args:
        samples: The pool's rows.
        keys: Group keys, coarsest first (see the module docstring).
        ratios: Shares of train, val, test (from :func:`check_ratios`).
        seed: Seed of the fold assignment.

    Returns:
        A split name per row.

    Raises:
        SplitError: For fewer units than splits, or a class that would be only in
            valid/test (named).
    """
    units = split_units(samples, keys)
    wanted = sum(r > 0 for r in ratios)
    count = len(set(units))
    if count < wanted:
        what = f"groups (by {', '.join(keys)})" if keys else "distinct images"
        raise SplitError(
            f"the pool has {count} {what}, fewer than the {wanted} splits asked for"
        )
    per_split = fold_counts(ratios, count)
    folds = _folds(samples, units, sum(per_split), seed)
    # which folds make which split: shuffled by the seed too
    order = np.random.default_rng(seed).permutation(sum(per_split))
    split_of_fold = np.empty(len(order), dtype=object)
    start = 0
    for split, n in zip(SPLITS, per_split, strict=True):
        split_of_fold[order[start : start + n]] = split
        start += n
    assignment = [str(split_of_fold[f]) for f in folds]
    _refuse_eval_only_classes(samples, assignment, units)
    return assignment


def _folds(
    samples: Sequence[Sample], units: Sequence[int], total: int, seed: int
) -> Ints:
    labels = np.unique([s.label for s in samples], return_inverse=True)[1]
    folds = np.zeros(len(samples), dtype=np.int64)
    splitter = StratifiedGroupKFold(total, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class": handled below
        warnings.simplefilter("ignore", UserWarning)
        parts = splitter.split(np.zeros(len(samples)), labels, np.asarray(units))
        for fold, (_, members) in enumerate(parts):
            folds[members] = fold
    return folds


def _refuse_eval_only_classes(
    samples: Sequence[Sample], assignment: Sequence[str], units: Sequence[int]
) -> None:
    train = {
        s.label
        for s, split in zip(samples, assignment, strict=True)
        if split == "train"
    }
    missing = sorted({s.label for s in samples} - train)
    if not missing:
        return
    described = []
    for label in missing:
        rows = [i for i, s in enumerate(samples) if s.label == label]
        splits = sorted({assignment[i] for i in rows}, key=SPLITS.index)
        groups = len({units[i] for i in rows})
        described.append(
            f"{display_name(label)!r} ({len(rows)} row(s) in {groups} group(s), "
            f"all in {'/'.join(splits)})"
        )
    raise SplitError(
        f"class {', '.join(described)} would be only in valid/test, never "
        "trained on; try another --seed, or give the class more groups"
    )


@dataclass(frozen=True)
class SplitSummary:
    """One line of the per-split table.

    Attributes:
        split: ``train``, ``val``, ``test`` or ``pool``.
        rows: Rows.
        groups: Units (by the first key; images without keys).
        key_groups: Distinct values of each further key.
        classes: Rows per class (display names).
        share_gap: Largest difference, in points of percentage, between a class's
            share of this split's rows and its share of the pool.
    """

    split: str
    rows: int
    groups: int
    key_groups: dict[str, int]
    classes: dict[str, int]
    share_gap: float

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``split_report.json``."""
        return {
            "rows": self.rows,
            "groups": self.groups,
            **{f"groups_{key}": n for key, n in self.key_groups.items()},
            "classes": len(self.classes),
            "max_class_share_diff_pct": round(self.share_gap, 2),
            "rows_per_class": self.classes,
        }


def summarize(
    samples: Sequence[Sample], assignment: Sequence[str], keys: Sequence[str]
) -> list[SplitSummary]:
    """The per-split table: the pool first, then each split that has rows.

    Args:
        samples: The pool's rows.
        assignment: Split of each row (from :func:`assign_splits`).
        keys: The group keys used.

    Returns:
        One summary per line of the table.
    """
    units = split_units(samples, keys)
    pool_counts = Counter(s.label for s in samples)
    chosen = [("pool", list(range(len(samples))))]
    for split in SPLITS:
        members = [i for i, name in enumerate(assignment) if name == split]
        if members:
            chosen.append((split, members))
    table = []
    for split, members in chosen:
        counts = Counter(samples[i].label for i in members)
        gap = max(
            abs(counts[label] / len(members) - pool / len(samples))
            for label, pool in pool_counts.items()
        )
        further = {
            key: len(
                {v for i in members if (v := group_value(samples[i], key)) is not None}
            )
            for key in keys[1:]
        }
        table.append(
            SplitSummary(
                split=split,
                rows=len(members),
                groups=len({units[i] for i in members}),
                key_groups=further,
                classes={display_name(label): n for label, n in sorted(counts.items())},
                share_gap=100 * gap,
            )
        )
    return table
