"""Class labels of the synthetic dataset: ``"0"`` .. ``"99"`` and the empty label.

The empty label ``""`` stands for a jersey with no number. Labels are always kept
in one canonical order, numbers ascending followed by ``""``, so a class list
means the same thing however it was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_CLASSES",
    "EMPTY_TOKEN",
    "MAX_NUMBER",
    "label_to_stem",
    "normalise_classes",
    "parse_class_spec",
]

MAX_NUMBER = 99
EMPTY_TOKEN = "empty"
"""How the empty label is spelled in class specs and file names."""

DEFAULT_CLASSES: tuple[str, ...] = (*(str(i) for i in range(MAX_NUMBER + 1)), "")
"""Labels ``"0"`` .. ``"99"`` followed by the empty label ``""``."""

_LABEL_RE = re.compile(r"^(0|[1-9][0-9]?)$")


def label_to_stem(label: str) -> str:
    """File-name stem used for a label (``"empty"`` for the empty label).

    Args:
        label: A class label.

    Returns:
        The label itself, or ``"empty"`` for ``""``.
    """
    return label if label else EMPTY_TOKEN


def _class_sort_key(label: str) -> tuple[int, int]:
    return (1, 0) if label == "" else (0, int(label))


def normalise_classes(classes: Iterable[str]) -> tuple[str, ...]:
    """Validate labels and put them in canonical order.

    Args:
        classes: Labels, ``"0"`` .. ``"99"`` without leading zeros, or ``""``.

    Returns:
        The labels, numbers ascending followed by ``""`` if present.

    Raises:
        ValueError: If the list is empty, a label is invalid or repeated.
    """
    labels = list(classes)
    if not labels:
        raise ValueError("classes must not be empty")
    for label in labels:
        if not isinstance(label, str) or not (label == "" or _LABEL_RE.match(label)):
            raise ValueError(
                f"invalid class label {label!r}: expected '0'..'{MAX_NUMBER}' "
                "without leading zeros, or '' (no number)"
            )
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate class labels in {labels!r}")
    return tuple(sorted(labels, key=_class_sort_key))


def _parse_number(token: str, spec: str) -> int:
    if not token.isdigit():
        raise ValueError(f"invalid token {token!r} in class spec {spec!r}")
    value = int(token)
    if value > MAX_NUMBER:
        raise ValueError(f"number {value} in class spec {spec!r} exceeds {MAX_NUMBER}")
    return value


def parse_class_spec(spec: str) -> tuple[str, ...]:
    """Parse a class specification such as ``"0-20"``, ``"7,10,23"`` or ``"all"``.

    The spec is a comma-separated list of tokens. A token is a number
    (``"7"``), an inclusive range (``"0-20"``), ``"empty"`` -- the empty label
    ``""`` (a jersey with no number) -- or ``"all"`` (``0``-``99`` plus empty).
    An empty token, e.g. from a leading or trailing comma (``"0-9,"``), also
    means the empty label.

    Args:
        spec: The specification.

    Returns:
        Unique labels, numbers ascending followed by ``""`` if requested.

    Raises:
        ValueError: If the spec is blank or contains an invalid token.
    """
    if not spec.strip():
        raise ValueError("class spec must not be blank")
    labels: set[str] = set()
    for raw in spec.split(","):
        token = raw.strip().lower()
        if token in ("", EMPTY_TOKEN):
            labels.add("")
        elif token == "all":
            labels.update(DEFAULT_CLASSES)
        elif "-" in token:
            lo_s, _, hi_s = token.partition("-")
            lo = _parse_number(lo_s.strip(), spec)
            hi = _parse_number(hi_s.strip(), spec)
            if lo > hi:
                raise ValueError(f"empty range {token!r} in class spec {spec!r}")
            labels.update(str(i) for i in range(lo, hi + 1))
        else:
            labels.add(str(_parse_number(token, spec)))
    return normalise_classes(labels)
