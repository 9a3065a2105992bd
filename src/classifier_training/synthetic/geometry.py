"""Homography algebra that poses the number: squeeze, rotate, tilt, fit and place.

Matrices are row-major 3x3 tuples in pure Python: they are tiny, and staying out
of numpy keeps BLAS threads idle in the worker processes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Matrix",
    "Pose",
    "affine",
    "bounding_box",
    "fit_scale",
    "matmul",
    "number_matrix",
    "perspective_coeffs",
    "place_in_box",
]

Matrix = tuple[float, float, float, float, float, float, float, float, float]
"""Row-major 3x3 homography."""

Box = Sequence[float]
"""``(x0, y0, x1, y1)`` in output pixels."""


def affine(a: float, b: float, c: float, d: float, e: float, f: float) -> Matrix:
    """The homography of the affine map ``(x, y) -> (ax + by + c, dx + ey + f)``.

    Args:
        a: Row 1, x coefficient.
        b: Row 1, y coefficient.
        c: Row 1, offset.
        d: Row 2, x coefficient.
        e: Row 2, y coefficient.
        f: Row 2, offset.

    Returns:
        The 3x3 matrix.
    """
    return (a, b, c, d, e, f, 0.0, 0.0, 1.0)


def matmul(*ms: Matrix) -> Matrix:
    """Product ``ms[0] @ ms[1] @ ...`` (the last matrix is applied first).

    Args:
        *ms: One or more matrices.

    Returns:
        Their product.
    """
    result = ms[0]
    for m in ms[1:]:
        a = result
        r = [
            a[3 * i] * m[j] + a[3 * i + 1] * m[3 + j] + a[3 * i + 2] * m[6 + j]
            for i in range(3)
            for j in range(3)
        ]
        result = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])
    return result


def _inverse(m: Matrix) -> Matrix:
    a, b, c, d, e, f, g, h, i = m
    co = (e * i - f * h, c * h - b * i, b * f - c * e)
    det = a * co[0] + d * co[1] + g * co[2]
    adj = (
        co[0], co[1], co[2],
        f * g - d * i, a * i - c * g, c * d - a * f,
        d * h - e * g, b * g - a * h, a * e - b * d,
    )  # fmt: skip
    r = [v / det for v in adj]
    return (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8])


def bounding_box(
    m: Matrix, width: float, height: float
) -> tuple[float, float, float, float]:
    """The box ``(x0, y0, x1, y1)`` around a ``width x height`` image mapped by ``m``.

    Args:
        m: The homography.
        width: Width of the source image.
        height: Height of the source image.

    Returns:
        The bounding box of the four mapped corners.
    """
    xs: list[float] = []
    ys: list[float] = []
    for x, y in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height)):
        z = m[6] * x + m[7] * y + m[8]
        xs.append((m[0] * x + m[1] * y + m[2]) / z)
        ys.append((m[3] * x + m[4] * y + m[5]) / z)
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Pose:
    """Per-image geometric parameters of the number (independent of its size).

    Attributes:
        condense: Horizontal squeeze factor.
        angle_rad: Rotation in radians.
        tilt_x: Projective tilt along x (0 = none).
        tilt_y: Projective tilt along y (0 = none).
    """

    condense: float
    angle_rad: float
    tilt_x: float
    tilt_y: float


def number_matrix(pose: Pose, width: float, height: float) -> Matrix:
    """Map text-image pixels to output pixels, centred on the origin.

    Args:
        pose: Squeeze, rotation and tilt.
        width: Width of the text image.
        height: Height of the text image.

    Returns:
        The homography.
    """
    centre = affine(1, 0, -width / 2, 0, 1, -height / 2)
    squeeze = affine(pose.condense, 0, 0, 0, 1, 0)
    cos, sin = math.cos(pose.angle_rad), math.sin(pose.angle_rad)
    rotate = affine(cos, -sin, 0, sin, cos, 0)
    half = max(width * pose.condense, height) / 2
    tilt = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, pose.tilt_x / half, pose.tilt_y / half, 1.0)
    return matmul(tilt, rotate, squeeze, centre)


def fit_scale(m: Matrix, width: float, height: float, box: Box) -> float:
    """Largest scale at which the mapped ``width x height`` image fits ``box``.

    Args:
        m: The homography.
        width: Width of the source image.
        height: Height of the source image.
        box: The available area.

    Returns:
        The scale factor (above 1 when it already fits with room to spare).
    """
    x0, y0, x1, y1 = bounding_box(m, width, height)
    avail_w, avail_h = box[2] - box[0], box[3] - box[1]
    return min(avail_w / max(x1 - x0, 1e-6), avail_h / max(y1 - y0, 1e-6))


def place_in_box(
    rng: np.random.Generator, m: Matrix, width: float, height: float, box: Box
) -> Matrix:
    """Shrink ``m`` until the image fits ``box``, then shift it to a random spot.

    Args:
        rng: The image's random generator (x offset drawn first, then y).
        m: Homography centred on the origin (see :func:`number_matrix`).
        width: Width of the source image.
        height: Height of the source image.
        box: The available area.

    Returns:
        The homography that maps the source image fully inside ``box``.
    """
    shrink = min(1.0, fit_scale(m, width, height, box))
    m = matmul(affine(shrink, 0, 0, 0, shrink, 0), m)
    x0, y0, x1, y1 = bounding_box(m, width, height)
    lo_x, hi_x = box[0] - x0, box[2] - x1
    lo_y, hi_y = box[1] - y0, box[3] - y1
    tx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else (lo_x + hi_x) / 2
    ty = rng.uniform(lo_y, hi_y) if hi_y > lo_y else (lo_y + hi_y) / 2
    return matmul(affine(1, 0, tx, 0, 1, ty), m)


def perspective_coeffs(m: Matrix) -> tuple[float, ...]:
    """The eight coefficients ``Image.transform(..., PERSPECTIVE)`` expects.

    PIL maps output pixels back to input pixels, so this is the normalised
    inverse of ``m``.

    Args:
        m: Homography from input to output pixels.

    Returns:
        ``(a, b, c, d, e, f, g, h)`` of the inverse, scaled so its last entry is 1.
    """
    inv = _inverse(m)
    return tuple(v / inv[8] for v in inv[:8])
