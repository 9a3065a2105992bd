"""Leakage across splits: near-duplicate images, and groups found in two splits.

A test image that is a near-copy of a training image (the next frame of one
track), or a track whose frames sit on both sides of the boundary, makes the
measured accuracy optimistic. ``classifier-check-data`` lists both; training
counts them (``metrics.json`` ``data.leakage``) so that a reported accuracy says
when it may be inflated. One module computes them for both.

Near-duplicates are searched from the later split into the earlier one
(valid -> train, test -> train, test -> valid) with
:func:`~classifier_training.core.near_duplicates.find_pairs`; byte- or
pixel-identical files are among them (score 1) when they have any detail.
Within a split, near-duplicate clusters inflate nothing; they are information
(:func:`within_split_clusters`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier_training.core.groups import group_value
from classifier_training.core.io import atomic_write_json
from classifier_training.core.near_duplicates import (
    DEFAULT_THRESHOLD,
    SIGNATURE_VERSION,
    SignatureArray,
    clusters,
    find_pairs,
)
from classifier_training.core.readers import SPLITS, Sample
from classifier_training.core.signature_cache import SignatureCache, signatures_for

#: (query split, reference split) pairs searched, later split first.
CROSS_SPLIT = (("val", "train"), ("test", "train"), ("test", "val"))


@dataclass(frozen=True, slots=True)
class NearDuplicate:
    """Two files in different splits that show the same picture.

    Attributes:
        score: Similarity (see :mod:`~classifier_training.core.near_duplicates`).
        query_split: The later split (``val`` or ``test``).
        query: The file there.
        reference_split: The earlier split (``train`` or ``val``).
        reference: The file there.
    """

    score: float
    query_split: str
    query: Path
    reference_split: str
    reference: Path

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports."""
        return {
            "score": round(self.score, 4),
            "files": [
                {"split": self.query_split, "path": str(self.query)},
                {"split": self.reference_split, "path": str(self.reference)},
            ],
        }


def cross_split_near_duplicates(
    images: Mapping[str, Sequence[Path]],
    signatures: Mapping[str, SignatureArray],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[NearDuplicate]:
    """Near-duplicate pairs between splits, most similar first.

    Args:
        images: Distinct image files per split.
        signatures: Their signatures per split, row ``i`` for ``images[split][i]``.
        threshold: Lowest score reported.

    Returns:
        The pairs.
    """
    found: list[NearDuplicate] = []
    for query_split, reference_split in CROSS_SPLIT:
        queries, references = images.get(query_split), images.get(reference_split)
        if not queries or not references:
            continue
        pairs = find_pairs(
            signatures[query_split], signatures[reference_split], threshold
        )
        found.extend(
            NearDuplicate(
                float(score),
                query_split,
                queries[query],
                reference_split,
                references[reference],
            )
            for query, reference, score in zip(
                pairs.query.tolist(),
                pairs.reference.tolist(),
                pairs.score.tolist(),
                strict=True,
            )
        )
    found.sort(key=lambda p: (-p.score, str(p.query), str(p.reference)))
    return found


def within_split_clusters(
    images: Mapping[str, Sequence[Path]],
    signatures: Mapping[str, SignatureArray],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, list[list[Path]]]:
    """Groups of near-duplicate files inside each split, largest first.

    Args:
        images: Distinct image files per split.
        signatures: Their signatures per split.
        threshold: Lowest score linking two files.

    Returns:
        Per split, each cluster of two or more files.
    """
    result: dict[str, list[list[Path]]] = {}
    for split, paths in images.items():
        pairs = find_pairs(signatures[split], threshold=threshold)
        result[split] = [
            [paths[i] for i in members.tolist()]
            for members in clusters(pairs, len(paths))
        ]
    return result


@dataclass(frozen=True, slots=True)
class GroupLeak:
    """A group value found in more than one split.

    Attributes:
        value: The group key's value.
        rows: Rows per split holding it.
        first: The first row (``file:line``) in each of those splits.
    """

    value: str
    rows: dict[str, int]
    first: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports."""
        return {
            "value": self.value,
            "splits": list(self.rows),
            "rows": self.rows,
            "first": self.first,
        }


def group_leaks(rows: Mapping[str, Sequence[Sample]], key: str) -> list[GroupLeak]:
    """Every value of ``key`` carried by rows of two or more splits.

    Rows without the key are groups of their own and never leak.

    Args:
        rows: Rows per split.
        key: The group key (a dotted path into ``metadata``).

    Returns:
        The leaking groups, in order of first appearance.
    """
    seen: dict[str, dict[str, list[Sample]]] = {}
    for split in (s for s in SPLITS if s in rows):
        for sample in rows[split]:
            value = group_value(sample, key)
            if value is not None:
                seen.setdefault(value, {}).setdefault(split, []).append(sample)
    return [
        GroupLeak(
            value,
            {split: len(members) for split, members in by_split.items()},
            {split: members[0].where for split, members in by_split.items()},
        )
        for value, by_split in seen.items()
        if len(by_split) > 1
    ]


def leakage_counts(
    pairs: Sequence[NearDuplicate],
    leaks: Sequence[GroupLeak] | None,
    key: str | None,
    threshold: float,
) -> dict[str, Any]:
    """The counts a training run records (``metrics.json`` ``data.leakage``).

    Args:
        pairs: Cross-split near-duplicate pairs.
        leaks: Groups in several splits (``None``: no group key, not checked).
        key: The group key checked, if any.
        threshold: The near-duplicate threshold used.

    Returns:
        ``near_duplicate_pairs`` (total and per split pair), the threshold, and
        ``group_leaks`` with the key (``None`` when not checked).
    """
    per_pair = {
        f"{query}-{reference}": sum(
            p.query_split == query and p.reference_split == reference for p in pairs
        )
        for query, reference in CROSS_SPLIT
    }
    return {
        "near_duplicate_pairs": len(pairs),
        "near_duplicate_pairs_by_split": per_pair,
        "near_duplicate_threshold": threshold,
        "group_key": key,
        "group_leaks": None if leaks is None else len(leaks),
    }


def _pair_counts_file(
    cache_dir: Path, digests: Mapping[str, Sequence[str]], threshold: float
) -> Path:
    """Where the pair counts of exactly these images and threshold are kept."""
    identity = json.dumps(
        {"version": SIGNATURE_VERSION, "threshold": threshold, "splits": digests},
        sort_keys=True,
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return cache_dir / f"near-duplicate-pairs-{key}.json"


def split_leakage(
    rows: Mapping[str, Sequence[Sample]],
    cache_dir: Path,
    key: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int | None = None,
) -> dict[str, Any]:
    """Leakage counts of a dataset's splits, for a training run.

    Signatures come from the content-keyed store in ``cache_dir`` (only new
    images are decoded); the pair counts of one set of images are kept there
    too, so a rerun on unchanged data costs one read of each file.

    Args:
        rows: Rows per split.
        cache_dir: The dataset's cache folder.
        key: Group key; ``None`` leaves the group check out.
        threshold: Near-duplicate threshold.
        workers: Threads for reading and decoding.

    Returns:
        :func:`leakage_counts`' dictionary.
    """
    cache = SignatureCache(cache_dir)
    images = {
        split: list(dict.fromkeys(s.image for s in samples))
        for split, samples in rows.items()
    }
    known, _ = signatures_for(
        [path for paths in images.values() for path in paths], cache, workers
    )
    images = {s: [p for p in paths if p in known] for s, paths in images.items()}
    digests = {s: [known[p] for p in paths] for s, paths in images.items()}
    leaks = None if key is None else group_leaks(rows, key)
    with contextlib.suppress(OSError):  # read-only data: computed again next time
        cache.save()
    counts_file = _pair_counts_file(cache_dir, digests, threshold)
    try:
        counts: dict[str, Any] = json.loads(counts_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not counted yet
        signatures = {s: cache.stack(d) for s, d in digests.items()}
        pairs = cross_split_near_duplicates(images, signatures, threshold)
        counts = leakage_counts(pairs, None, None, threshold)
        with contextlib.suppress(OSError):
            atomic_write_json(counts_file, counts)
    counts.update(group_key=key, group_leaks=None if leaks is None else len(leaks))
    return counts


def leakage_warning(
    counts: Mapping[str, Any], data_root: Path, cache_dir: Path | None = None
) -> str | None:
    """The one warning line of a run whose splits leak, or ``None`` when clean.

    Args:
        counts: :func:`leakage_counts`' dictionary.
        data_root: The dataset root (for the command that lists the pairs).
        cache_dir: The cache folder when not the default (passed on, so the
            command reuses the signatures).
    """
    pairs, leaks, key = (
        counts["near_duplicate_pairs"],
        counts["group_leaks"],
        counts["group_key"],
    )
    if not pairs and not leaks:
        return None
    found = []
    command = ["classifier-check-data", str(data_root)]
    if pairs:
        per = ", ".join(
            f"{name} {n}" for name, n in counts["near_duplicate_pairs_by_split"].items()
        )
        found.append(f"{pairs} near-duplicate image pair(s) across splits ({per})")
    if key is not None:
        command += ["--group-by", key]
        if leaks:
            found.append(f"{leaks} {key} group(s) in several splits")
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    return (
        f"data leakage: {' and '.join(found)}; val/test accuracy may be inflated. "
        f"List them: {shlex.join(command)}"
    )
