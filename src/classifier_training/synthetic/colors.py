"""Team colours and the random choices made among them.

Jersey and number colours are drawn from a named :data:`PALETTE` so the metadata
can report them by name; number colours keep a minimum WCAG contrast ratio with
the jersey so every digit stays legible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np

__all__ = [
    "EDGE_COLORS",
    "HELD_OUT_PALETTE",
    "PALETTE",
    "Color",
    "Palette",
    "contrast",
    "jitter",
    "outline_candidates",
    "pick",
    "pick_contrasting",
]

Color = tuple[int, int, int]
Palette = Mapping[str, Color]
_T = TypeVar("_T")

PALETTE: dict[str, Color] = {
    "white": (242, 242, 240),
    "black": (22, 22, 26),
    "red": (200, 20, 45),
    "maroon": (110, 22, 40),
    "navy": (22, 36, 84),
    "royal": (30, 72, 172),
    "sky": (112, 172, 226),
    "green": (0, 122, 62),
    "teal": (0, 128, 128),
    "yellow": (250, 206, 24),
    "gold": (196, 154, 62),
    "orange": (240, 112, 24),
    "purple": (86, 42, 136),
    "grey": (128, 130, 136),
}
"""Named team colours; metadata reports these names."""

HELD_OUT_PALETTE: dict[str, Color] = {
    "pink": (236, 122, 170),
    "lime": (160, 206, 48),
    "cream": (236, 224, 186),
    "cyan": (30, 186, 214),
    "lavender": (170, 150, 222),
    "brown": (104, 62, 30),
    "charcoal": (58, 62, 70),
    "plum": (98, 28, 88),
    "forest": (24, 80, 40),
}
"""Colours the train/valid/test splits never draw (the ``test_degraded`` split's).

Each differs from every :data:`PALETTE` colour by more than twice the default
colour jitter in at least one channel, so the jittered colours never overlap.
"""

EDGE_COLORS: tuple[Color, ...] = (
    (64, 118, 52),  # grass
    (36, 36, 40),  # shadow / crowd
    (205, 165, 135),  # skin
    (125, 84, 60),  # skin
    (150, 150, 150),  # stadium
)
"""Things that may bleed into a detection crop at its left/right edge."""


def _luminance(color: Color) -> float:
    def channel(c: int) -> float:
        s = c / 255.0
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = color
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio between two colours (1 = none, 21 = black on white).

    Args:
        a: First colour.
        b: Second colour.

    Returns:
        The ratio, at least 1.
    """
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def pick(rng: np.random.Generator, items: Sequence[_T]) -> _T:
    """Draw one item uniformly (one ``rng.integers`` call, whatever the items).

    Args:
        rng: The image's random generator.
        items: Non-empty candidates.

    Returns:
        The chosen item.
    """
    return items[int(rng.integers(len(items)))]


def jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    """Shift each channel by a uniform integer in ``[-amount, amount]``.

    Args:
        rng: The image's random generator (untouched when ``amount <= 0``).
        color: The base colour.
        amount: Maximum shift per channel (0-255 scale).

    Returns:
        The jittered colour, clipped to ``0..255``.
    """
    if amount <= 0:
        return color
    delta = rng.integers(-amount, amount + 1, size=3)
    r, g, b = (int(np.clip(c + d, 0, 255)) for c, d in zip(color, delta, strict=True))
    return (r, g, b)


@lru_cache(maxsize=1024)
def _contrasting(
    against: str,
    min_ratio: float,
    exclude: tuple[str, ...],
    palette: tuple[tuple[str, Color], ...],
) -> list[str]:
    colors = dict(palette)
    excluded = {*exclude, against}
    allowed = [name for name in colors if name not in excluded]
    ratio = {name: contrast(colors[name], colors[against]) for name in allowed}
    candidates = [name for name in allowed if ratio[name] >= min_ratio]
    # Fallback (never hit with the default palette): the best available colour.
    return candidates or [max(allowed, key=lambda n: ratio[n])]


def pick_contrasting(
    rng: np.random.Generator,
    against: str,
    min_ratio: float,
    exclude: tuple[str, ...] = (),
    palette: Palette = PALETTE,
) -> str:
    """Draw a palette colour name that stands out against another.

    Args:
        rng: The image's random generator.
        against: Palette name of the background colour.
        min_ratio: Minimum contrast ratio with ``against``.
        exclude: Palette names that must not be chosen.
        palette: The colours to choose from (``against`` is one of them).

    Returns:
        A palette name with at least ``min_ratio`` contrast, or the most
        contrasting one if none reaches it.
    """
    return pick(rng, _contrasting(against, min_ratio, exclude, tuple(palette.items())))


def outline_candidates(
    number: str, jersey: str, palette: Palette = PALETTE
) -> list[str]:
    """Outline colours: distinct from the number and still visible on the jersey.

    Args:
        number: Palette name of the number colour.
        jersey: Palette name of the jersey colour.
        palette: The colours to choose from.

    Returns:
        Palette names, in palette order.
    """
    return _outline_candidates(number, jersey, tuple(palette.items()))


@lru_cache(maxsize=1024)
def _outline_candidates(
    number: str, jersey: str, palette: tuple[tuple[str, Color], ...]
) -> list[str]:
    colors = dict(palette)
    candidates = _contrasting(number, 2.0, (jersey,), palette)
    visible = [n for n in candidates if contrast(colors[n], colors[jersey]) >= 1.5]
    return visible or candidates
