"""Jersey decorations and fabric shading: stripes, logos, light and folds.

Each function draws its random parameters from the image's generator in a fixed
order; changing that order changes every image (bump ``GENERATOR_VERSION``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from PIL import ImageDraw

from classifier_training.synthetic.colors import Color, pick
from classifier_training.synthetic.config import SynthConfig

__all__ = [
    "LOGO_SHAPES",
    "STRIPE_STYLES",
    "brightness_field",
    "draw_logo",
    "draw_stripes",
]

STRIPE_STYLES: tuple[str, ...] = ("side", "yoke", "pinstripe", "sleeve")
LOGO_SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "diamond")


def draw_stripes(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    style: str,
    color: Color,
    size: tuple[int, int],
) -> None:
    """Draw a stripe decoration across the jersey.

    Args:
        draw: Drawing context of the (supersampled) crop.
        rng: The image's random generator.
        style: One of :data:`STRIPE_STYLES`.
        color: Stripe colour.
        size: ``(width, height)`` of the crop.
    """
    w, h = size
    if style == "side":
        band = rng.uniform(0.05, 0.12) * w
        draw.rectangle((0, 0, band, h), fill=color)
        draw.rectangle((w - band, 0, w, h), fill=color)
    elif style == "yoke":
        band = rng.uniform(0.06, 0.15) * h
        draw.rectangle((0, 0, w, band), fill=color)
    elif style == "sleeve":
        band = rng.uniform(0.04, 0.09) * w
        gap = rng.uniform(0.0, 0.05) * w
        for x in (gap, w - gap - band):
            draw.rectangle((x, 0, x + band, h), fill=color)
    else:  # pinstripe: thin vertical lines across the jersey
        period = rng.uniform(0.12, 0.22) * w
        line = max(1.0, 0.012 * w)
        x = rng.uniform(0, period)
        while x < w:
            draw.rectangle((x, 0, x + line, h), fill=color)
            x += period


def draw_logo(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cfg: SynthConfig,
    color: Color,
    size: tuple[int, int],
) -> str:
    """Draw a solid logo blob somewhere inside the margins.

    Args:
        draw: Drawing context of the (supersampled) crop.
        rng: The image's random generator.
        cfg: Supplies ``logo_size_range`` and ``margin_frac``.
        color: Logo colour.
        size: ``(width, height)`` of the crop.

    Returns:
        The shape drawn, one of :data:`LOGO_SHAPES`.
    """
    w, h = size
    shape = pick(rng, LOGO_SHAPES)
    s = rng.uniform(*cfg.logo_size_range) * h
    sw = s * rng.uniform(0.7, 1.4)
    margin = cfg.margin_frac * min(w, h)
    x0 = rng.uniform(margin, max(margin, w - margin - sw))
    y0 = rng.uniform(margin, max(margin, h - margin - s))
    x1, y1 = x0 + sw, y0 + s
    if shape == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=color)
    elif shape == "rectangle":
        draw.rounded_rectangle((x0, y0, x1, y1), radius=0.2 * s, fill=color)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)
    else:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=color)
    return shape


def brightness_field(
    rng: np.random.Generator, cfg: SynthConfig, w: int, h: int
) -> NDArray[np.float32]:
    """Multiplicative brightness field: gain, lighting gradient, folds and mesh.

    Args:
        rng: The image's random generator.
        cfg: Supplies the gain, gradient, fold and mesh settings.
        w: Width of the final crop.
        h: Height of the final crop.

    Returns:
        A ``(h, w)`` float32 array around 1.
    """
    xx = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    yy = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    gain = rng.uniform(*cfg.gain_range)
    grad = rng.uniform(*cfg.gradient_amp_range)
    phi = rng.uniform(0, 2 * math.pi)
    field_ = gain * (
        1.0 + 2 * grad * ((xx - 0.5) * math.cos(phi) + (yy - 0.5) * math.sin(phi))
    )
    for _ in range(int(rng.integers(1, 3))):
        amp = rng.uniform(*cfg.fold_amp_range)
        freq = rng.uniform(0.6, 2.5)
        slant = rng.uniform(-0.6, 0.6)
        phase = rng.uniform(0, 2 * math.pi)
        field_ = field_ * (
            1.0 + amp * np.sin(2 * math.pi * freq * (xx + slant * yy) + phase)
        )
    if rng.random() < cfg.mesh_prob:
        period = rng.uniform(2.0, 3.5) * h / 64.0
        px = np.arange(w, dtype=np.float32)[None, :]
        py = np.arange(h, dtype=np.float32)[:, None]
        mesh = np.sin(2 * math.pi * px / period) * np.sin(2 * math.pi * py / period)
        field_ = field_ * (1.0 + rng.uniform(0.02, 0.05) * mesh)
    return field_.astype(np.float32)
