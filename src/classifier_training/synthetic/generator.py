"""Procedural generator for a synthetic jersey-number classification dataset.

Every image is a crop of the back of a sports jersey showing a number between
``0`` and ``99`` -- or no number at all for the empty label ``""``. Images are
rendered from the DejaVu/STIX fonts bundled with matplotlib, so no system fonts
or downloads are needed.

Each image is rendered from its own random generator seeded with
``(seed, split, class, index)``; output is therefore byte-identical for the same
configuration no matter how many worker processes are used, and a class subset
renders exactly the same images for the classes it keeps.

Layout written to ``config.out_dir``::

    synth_config.json            # configuration used (written first)
    train/annotations.jsonl      # one JSON object per image
    train/images/<label>_<index>.jpg
    valid/...
    test/...
    .complete                    # marker written last, holds the row counts
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_FONTS",
    "GENERATOR_VERSION",
    "PALETTE",
    "SPLITS",
    "SynthConfig",
    "SynthError",
    "dataset_is_complete",
    "default_workers",
    "eval_per_class",
    "find_fonts",
    "generate_dataset",
    "label_to_stem",
    "parse_class_spec",
    "render_sample",
]

GENERATOR_VERSION = 1
"""Bumped whenever a change to the renderer alters the produced images."""

SPLITS: tuple[str, ...] = ("train", "valid", "test")
MARKER_NAME = ".complete"
CONFIG_NAME = "synth_config.json"
ANNOTATIONS_NAME = "annotations.jsonl"
IMAGES_DIRNAME = "images"
PREFIX = "jersey number"
EMPTY_TOKEN = "empty"
MAX_NUMBER = 99

DEFAULT_CLASSES: tuple[str, ...] = (*(str(i) for i in range(MAX_NUMBER + 1)), "")
"""Labels ``"0"`` .. ``"99"`` followed by the empty label ``""``."""

DEFAULT_FONTS: tuple[str, ...] = (
    "DejaVuSans-Bold",
    "DejaVuSans-BoldOblique",
    "DejaVuSerif-Bold",
    "DejaVuSansMono-Bold",
    "DejaVuSans",
    "DejaVuSerif",
    "STIXGeneralBol",
)
"""Font file stems looked up in ``matplotlib.get_data_path()/fonts/ttf``."""

PALETTE: dict[str, tuple[int, int, int]] = {
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

# Things that may bleed into a detection crop at its left/right edge.
_EDGE_COLORS: tuple[tuple[int, int, int], ...] = (
    (64, 118, 52),  # grass
    (36, 36, 40),  # shadow / crowd
    (205, 165, 135),  # skin
    (125, 84, 60),  # skin
    (150, 150, 150),  # stadium
)
_STRIPE_STYLES: tuple[str, ...] = ("side", "yoke", "pinstripe", "sleeve")
_LOGO_SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "diamond")
_LABEL_RE = re.compile(r"^(0|[1-9][0-9]?)$")
_SPLIT_IDS: dict[str, int] = {name: i for i, name in enumerate(SPLITS)}
_REF_FONT_SIZE = 200
# Fields that do not influence the produced files.
_RUNTIME_FIELDS: frozenset[str] = frozenset({"out_dir", "workers", "overwrite"})

_T = TypeVar("_T")
Color = tuple[int, int, int]
FloatRange = tuple[float, float]
Metadata = dict[str, str | bool]
Row = dict[str, Any]


class SynthError(RuntimeError):
    """Raised when the output directory is not in a state we may write to."""


def _check_range(name: str, value: FloatRange, low: float, high: float) -> None:
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(
            f"{name} must satisfy {low} <= lo <= hi <= {high}, got {value}"
        )


def _check_prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that controls a synthetic dataset run.

    The first block holds the run parameters; the remaining fields are the
    rendering ranges, kept together so the difficulty can be tuned in one place.
    Ranges are ``(low, high)`` and sampled uniformly per image. Fractions refer to
    the crop height unless stated otherwise.

    Attributes:
        out_dir: Output directory (``train``/``valid``/``test`` go below it).
        per_class: Training images per class.
        seed: Non-negative master seed.
        image_size: Crop height in pixels; the width is ``aspect_range`` times it.
        classes: Labels to render: ``"0"`` .. ``"99"`` and/or ``""`` (no number).
            Normalised to ascending numbers followed by ``""``.
        workers: Worker processes; ``None`` means :func:`default_workers`.
            Does not affect the output.
        overwrite: Replace an existing, incomplete or differently-configured
            dataset in ``out_dir``.
        eval_fraction: Share of ``per_class`` rendered per class for valid/test.
        min_eval_per_class: Lower bound of valid/test images per class.
        supersample: Render at this integer multiple of the final size, then
            box-downsample (anti-aliasing).
        fonts: Font file stems to draw digits with (see :data:`DEFAULT_FONTS`).
        aspect_range: Crop width as a fraction of its height.
        digit_height_range: Target height of the number (including outline) as a
            fraction of crop height; shrunk further if it would not fit the width.
        condense_range: Horizontal squeeze applied to the number.
        max_rotation_deg: Rotation is uniform in ``[-max, +max]`` degrees.
        perspective: Maximum projective tilt of the number (0 = none).
        margin_frac: Minimum gap between the number and the crop border, as a
            fraction of the smaller crop side.
        outline_prob: Probability that digits have an outline in a third colour.
        outline_width_range: Outline width as a fraction of the font size.
        faux_bold_width: Same-colour stroke (fraction of font size) thickening
            regular-weight fonts.
        min_contrast: Minimum WCAG contrast ratio between jersey and number
            colours.
        color_jitter: Per-channel uniform jitter (0-255 scale) on every colour.
        stripe_prob: Probability of a stripe decoration on the jersey.
        edge_prob: Probability of background (grass, skin, ...) at one side edge.
        edge_width_range: Width of that background band as a fraction of width.
        logo_prob: Probability that an empty-label jersey shows a logo blob.
        logo_size_range: Logo size as a fraction of crop height.
        fold_amp_range: Amplitude of sinusoidal fabric folds (brightness).
        gradient_amp_range: Amplitude of the linear lighting gradient.
        gain_range: Overall brightness gain.
        mesh_prob: Probability of a fine mesh-fabric texture.
        blur_radius_range: Gaussian blur radius in pixels at 64 px crop height
            (scaled with ``image_size``).
        noise_std_range: Standard deviation of Gaussian pixel noise (0-255 scale).
        jpeg_quality_range: JPEG quality, an integer drawn from this range.
    """

    out_dir: Path
    per_class: int = 60
    seed: int = 0
    image_size: int = 64
    classes: tuple[str, ...] = DEFAULT_CLASSES
    workers: int | None = None
    overwrite: bool = False
    eval_fraction: float = 0.2
    min_eval_per_class: int = 2
    supersample: int = 2
    fonts: tuple[str, ...] = DEFAULT_FONTS
    aspect_range: FloatRange = (0.75, 1.0)
    digit_height_range: FloatRange = (0.40, 0.70)
    condense_range: FloatRange = (0.75, 1.0)
    max_rotation_deg: float = 10.0
    perspective: float = 0.06
    margin_frac: float = 0.05
    outline_prob: float = 0.4
    outline_width_range: FloatRange = (0.03, 0.065)
    faux_bold_width: float = 0.025
    min_contrast: float = 3.0
    color_jitter: int = 12
    stripe_prob: float = 0.4
    edge_prob: float = 0.25
    edge_width_range: FloatRange = (0.03, 0.10)
    logo_prob: float = 0.7
    logo_size_range: FloatRange = (0.12, 0.28)
    fold_amp_range: FloatRange = (0.0, 0.12)
    gradient_amp_range: FloatRange = (0.0, 0.15)
    gain_range: FloatRange = (0.85, 1.1)
    mesh_prob: float = 0.3
    blur_radius_range: FloatRange = (0.0, 0.9)
    noise_std_range: FloatRange = (0.0, 6.0)
    jpeg_quality_range: tuple[int, int] = (55, 95)

    def __post_init__(self) -> None:
        """Normalise and validate the fields.

        Raises:
            ValueError: If a field is out of range.
        """
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "classes", _normalise_classes(self.classes))
        object.__setattr__(self, "fonts", tuple(self.fonts))
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if self.per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {self.per_class}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.min_eval_per_class < 0:
            raise ValueError("min_eval_per_class must be >= 0")
        if self.supersample < 1:
            raise ValueError("supersample must be >= 1")
        if not self.fonts:
            raise ValueError("fonts must not be empty")
        _check_prob("eval_fraction", self.eval_fraction)
        _check_range("aspect_range", self.aspect_range, 0.3, 2.0)
        _check_range("digit_height_range", self.digit_height_range, 0.05, 0.95)
        _check_range("condense_range", self.condense_range, 0.3, 1.5)
        _check_range("outline_width_range", self.outline_width_range, 0.0, 0.3)
        _check_range("edge_width_range", self.edge_width_range, 0.0, 0.4)
        _check_range("logo_size_range", self.logo_size_range, 0.01, 0.9)
        _check_range("fold_amp_range", self.fold_amp_range, 0.0, 1.0)
        _check_range("gradient_amp_range", self.gradient_amp_range, 0.0, 1.0)
        _check_range("gain_range", self.gain_range, 0.0, 3.0)
        _check_range("blur_radius_range", self.blur_radius_range, 0.0, 10.0)
        _check_range("noise_std_range", self.noise_std_range, 0.0, 100.0)
        lo_q, hi_q = self.jpeg_quality_range
        if not 1 <= lo_q <= hi_q <= 100:
            raise ValueError(f"jpeg_quality_range invalid: {self.jpeg_quality_range}")
        for name in (
            "outline_prob",
            "stripe_prob",
            "edge_prob",
            "logo_prob",
            "mesh_prob",
        ):
            _check_prob(name, getattr(self, name))
        if not 0.0 <= self.max_rotation_deg <= 45.0:
            raise ValueError("max_rotation_deg must be in [0, 45]")
        if not 0.0 <= self.perspective <= 0.3:
            raise ValueError("perspective must be in [0, 0.3]")
        if not 0.0 <= self.margin_frac <= 0.3:
            raise ValueError("margin_frac must be in [0, 0.3]")
        if self.min_contrast < 1.0:
            raise ValueError("min_contrast must be >= 1 (WCAG ratio)")

    @property
    def eval_per_class(self) -> int:
        """Images per class in the valid and in the test split."""
        return eval_per_class(
            self.per_class, self.eval_fraction, self.min_eval_per_class
        )

    def per_class_counts(self) -> dict[str, int]:
        """Images per class for each split.

        Returns:
            Mapping ``split -> images per class``.
        """
        n_eval = self.eval_per_class
        return {"train": self.per_class, "valid": n_eval, "test": n_eval}

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that affects the output.

        Returns:
            The config fields (minus ``out_dir``, ``workers`` and ``overwrite``)
            plus ``generator_version``, with tuples converted to lists.
        """
        data = {k: v for k, v in asdict(self).items() if k not in _RUNTIME_FIELDS}
        data["generator_version"] = GENERATOR_VERSION
        normalised: dict[str, Any] = json.loads(json.dumps(data))
        return normalised


def eval_per_class(per_class: int, fraction: float = 0.2, minimum: int = 2) -> int:
    """Number of valid (and of test) images per class.

    Args:
        per_class: Training images per class.
        fraction: Share of ``per_class``.
        minimum: Lower bound.

    Returns:
        ``max(minimum, round(fraction * per_class))``.
    """
    return max(minimum, round(fraction * per_class))


def default_workers() -> int:
    """Default number of worker processes: ``min(2, os.cpu_count())``."""
    return max(1, min(2, os.cpu_count() or 1))


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


def _normalise_classes(classes: Iterable[str]) -> tuple[str, ...]:
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
    return _normalise_classes(labels)


def find_fonts(names: Sequence[str] = DEFAULT_FONTS) -> dict[str, str]:
    """Locate font files bundled with matplotlib.

    Args:
        names: Font file stems, e.g. ``"DejaVuSans-Bold"``.

    Returns:
        Mapping ``stem -> path`` (in the order of ``names``) of the fonts found.

    Raises:
        SynthError: If none of the fonts exists.
    """
    import matplotlib  # deferred: only needed to find the font directory

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = {
        name: str(font_dir / f"{name}.ttf")
        for name in names
        if (font_dir / f"{name}.ttf").is_file()
    }
    if not found:
        raise SynthError(f"none of the fonts {list(names)} found in {font_dir}")
    return found


# --------------------------------------------------------------------------- colour


def _luminance(color: Color) -> float:
    def channel(c: int) -> float:
        s = c / 255.0
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = color
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: Color, b: Color) -> float:
    la, lb = _luminance(a), _luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def _pick(rng: np.random.Generator, items: Sequence[_T]) -> _T:
    return items[int(rng.integers(len(items)))]


def _jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    if amount <= 0:
        return color
    delta = rng.integers(-amount, amount + 1, size=3)
    r, g, b = (int(np.clip(c + d, 0, 255)) for c, d in zip(color, delta, strict=True))
    return (r, g, b)


@lru_cache(maxsize=1024)
def _contrasting(against: str, min_ratio: float, exclude: tuple[str, ...]) -> list[str]:
    excluded = {*exclude, against}
    allowed = [name for name in PALETTE if name not in excluded]
    ratio = {name: _contrast(PALETTE[name], PALETTE[against]) for name in allowed}
    candidates = [name for name in allowed if ratio[name] >= min_ratio]
    # Fallback (never hit with the default palette): the best available colour.
    return candidates or [max(allowed, key=lambda n: ratio[n])]


def _pick_contrasting(
    rng: np.random.Generator,
    against: str,
    min_ratio: float,
    exclude: tuple[str, ...] = (),
) -> str:
    return _pick(rng, _contrasting(against, min_ratio, exclude))


@lru_cache(maxsize=1024)
def _outline_candidates(number: str, jersey: str) -> list[str]:
    """Outline colours: distinct from the number and still visible on the jersey."""
    candidates = _contrasting(number, 2.0, (jersey,))
    visible = [n for n in candidates if _contrast(PALETTE[n], PALETTE[jersey]) >= 1.5]
    return visible or candidates


# ------------------------------------------------------------------------ geometry

Matrix = tuple[float, float, float, float, float, float, float, float, float]
"""Row-major 3x3 homography (pure Python: tiny, and keeps BLAS threads idle)."""


def _affine(a: float, b: float, c: float, d: float, e: float, f: float) -> Matrix:
    return (a, b, c, d, e, f, 0.0, 0.0, 1.0)


def _matmul(*ms: Matrix) -> Matrix:
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


def _bbox(m: Matrix, width: float, height: float) -> tuple[float, float, float, float]:
    xs: list[float] = []
    ys: list[float] = []
    for x, y in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height)):
        z = m[6] * x + m[7] * y + m[8]
        xs.append((m[0] * x + m[1] * y + m[2]) / z)
        ys.append((m[3] * x + m[4] * y + m[5]) / z)
    return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class _Pose:
    """Per-image geometric parameters of the number (independent of its size)."""

    condense: float
    angle_rad: float
    tilt_x: float
    tilt_y: float


def _number_matrix(pose: _Pose, width: float, height: float) -> Matrix:
    """Map text-image pixels to output pixels, centred on the origin."""
    centre = _affine(1, 0, -width / 2, 0, 1, -height / 2)
    squeeze = _affine(pose.condense, 0, 0, 0, 1, 0)
    cos, sin = math.cos(pose.angle_rad), math.sin(pose.angle_rad)
    rotate = _affine(cos, -sin, 0, sin, cos, 0)
    half = max(width * pose.condense, height) / 2
    tilt = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, pose.tilt_x / half, pose.tilt_y / half, 1.0)
    return _matmul(tilt, rotate, squeeze, centre)


def _fit_scale(m: Matrix, width: float, height: float, box: Sequence[float]) -> float:
    x0, y0, x1, y1 = _bbox(m, width, height)
    avail_w, avail_h = box[2] - box[0], box[3] - box[1]
    return min(avail_w / max(x1 - x0, 1e-6), avail_h / max(y1 - y0, 1e-6))


# ---------------------------------------------------------------------- rendering


@lru_cache(maxsize=2048)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=4096)
def _text_extent(path: str, text: str, stroke: int) -> tuple[int, int]:
    left, top, right, bottom = _font(path, _REF_FONT_SIZE).getbbox(
        text, stroke_width=stroke
    )
    return int(right - left), int(bottom - top)


def _text_masks(
    path: str, text: str, size: int, stroke: int, outline: bool
) -> tuple[Image.Image, Image.Image | None]:
    """Render ``text`` into tight masks: the full glyphs and (if outlined) the fill."""
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = 2
    canvas = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    origin = (pad - left, pad - top)
    full = Image.new("L", canvas, 0)
    ImageDraw.Draw(full).text(
        origin, text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    crop = full.getbbox() or (0, 0, canvas[0], canvas[1])
    inner: Image.Image | None = None
    if outline:
        inner = Image.new("L", canvas, 0)
        ImageDraw.Draw(inner).text(
            origin, text, font=font, fill=255, stroke_width=stroke, stroke_fill=0
        )
        inner = inner.crop(crop)
    return full.crop(crop), inner


def _draw_stripes(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    style: str,
    color: Color,
    size: tuple[int, int],
) -> None:
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


def _draw_logo(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cfg: SynthConfig,
    color: Color,
    size: tuple[int, int],
) -> str:
    w, h = size
    shape = _pick(rng, _LOGO_SHAPES)
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


def _brightness(
    rng: np.random.Generator, cfg: SynthConfig, w: int, h: int
) -> NDArray[np.float32]:
    """Multiplicative brightness field: gain, lighting gradient, folds and mesh."""
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


def _render(
    cfg: SynthConfig, fonts: Mapping[str, str], split: str, label: str, index: int
) -> tuple[Image.Image, int, Metadata]:
    """Render one crop; returns the final RGB image, its JPEG quality and metadata."""
    class_key = 0 if label == "" else int(label) + 1
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], class_key, index])
    ss = cfg.supersample
    out_h = cfg.image_size
    out_w = max(8, round(out_h * rng.uniform(*cfg.aspect_range)))
    w, h = out_w * ss, out_h * ss
    names = list(PALETTE)

    jersey_name = _pick(rng, names)
    jersey = _jitter(rng, PALETTE[jersey_name], cfg.color_jitter)
    number_name = _pick_contrasting(rng, jersey_name, cfg.min_contrast)
    img = Image.new("RGB", (w, h), jersey)
    draw = ImageDraw.Draw(img)

    stripes = "none"
    if rng.random() < cfg.stripe_prob:
        stripes = _pick(rng, _STRIPE_STYLES)
        if stripes == "pinstripe":
            other = np.array(PALETTE[_pick(rng, names)], dtype=np.float64)
            mix = rng.uniform(0.15, 0.3)
            blend = (1 - mix) * np.array(jersey, dtype=np.float64) + mix * other
            r, g, b = (int(np.rint(v)) for v in blend)
            stripe_color: Color = (r, g, b)
        else:
            stripe_name = _pick(
                rng, [n for n in names if n not in (jersey_name, number_name)]
            )
            stripe_color = _jitter(rng, PALETTE[stripe_name], cfg.color_jitter)
        _draw_stripes(draw, rng, stripes, stripe_color, (w, h))

    # Free area for the number; a background band may occupy one side.
    margin = cfg.margin_frac * min(w, h) + ss
    box = [margin, margin, w - margin, h - margin]
    edge = "none"
    if rng.random() < cfg.edge_prob:
        edge = "left" if rng.random() < 0.5 else "right"
        band = rng.uniform(*cfg.edge_width_range) * w
        edge_color = _jitter(rng, _pick(rng, _EDGE_COLORS), cfg.color_jitter)
        if edge == "left":
            draw.rectangle((0, 0, band, h), fill=edge_color)
            box[0] += band
        else:
            draw.rectangle((w - band, 0, w, h), fill=edge_color)
            box[2] -= band

    meta: Metadata = {
        "font": "none",
        "jersey_color": jersey_name,
        "number_color": "none",
        "outline": False,
        "outline_color": "none",
        "stripes": stripes,
        "edge": edge,
        "logo": False,
    }
    if label:
        _draw_number(img, rng, cfg, fonts, label, jersey_name, number_name, box, meta)
    elif rng.random() < cfg.logo_prob:
        logo_name = _pick_contrasting(rng, jersey_name, 1.5)
        logo_color = _jitter(rng, PALETTE[logo_name], cfg.color_jitter)
        _draw_logo(draw, rng, cfg, logo_color, (w, h))
        meta["logo"] = True

    if ss > 1:
        img = img.reduce(ss)
    radius = rng.uniform(*cfg.blur_radius_range) * out_h / 64.0
    if radius > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    # Fabric shading (smooth, so applying it after blurring is equivalent) + noise.
    arr = (
        np.asarray(img, dtype=np.float32)
        * _brightness(rng, cfg, out_w, out_h)[:, :, None]
    )
    noise_std = rng.uniform(*cfg.noise_std_range)
    arr += np.float32(noise_std) * rng.standard_normal(arr.shape, dtype=np.float32)
    arr += 0.5
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    quality = int(
        rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1)
    )
    return img, quality, meta


def _draw_number(
    img: Image.Image,
    rng: np.random.Generator,
    cfg: SynthConfig,
    fonts: Mapping[str, str],
    label: str,
    jersey_name: str,
    number_name: str,
    box: Sequence[float],
    meta: Metadata,
) -> None:
    """Draw ``label`` onto ``img`` fully inside ``box`` (x0, y0, x1, y1)."""
    w, h = img.size
    font_name = _pick(rng, list(fonts))
    path = fonts[font_name]
    outline = bool(rng.random() < cfg.outline_prob)
    if outline:
        stroke_frac = rng.uniform(*cfg.outline_width_range)
        outline_name = _pick(rng, _outline_candidates(number_name, jersey_name))
    else:
        is_bold = "Bol" in font_name
        stroke_frac = 0.0 if is_bold else cfg.faux_bold_width
        outline_name = number_name
    number_color = _jitter(rng, PALETTE[number_name], cfg.color_jitter)
    outline_color = (
        _jitter(rng, PALETTE[outline_name], cfg.color_jitter)
        if outline
        else number_color
    )
    pose = _Pose(
        condense=rng.uniform(*cfg.condense_range),
        angle_rad=math.radians(
            rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
        ),
        tilt_x=rng.uniform(-cfg.perspective, cfg.perspective),
        tilt_y=rng.uniform(-cfg.perspective, cfg.perspective) * 0.5,
    )
    target_h = rng.uniform(*cfg.digit_height_range) * h
    # Size from the reference-size extent, shrunk until the posed number fits.
    ref_w, ref_h = _text_extent(path, label, round(_REF_FONT_SIZE * stroke_frac))
    scale = target_h / ref_h
    fit = _fit_scale(
        _number_matrix(pose, ref_w * scale, target_h), ref_w * scale, target_h, box
    )
    size = max(6, int(_REF_FONT_SIZE * scale * min(1.0, fit)))
    stroke = round(size * stroke_frac)
    if outline:
        stroke = max(stroke, 1)
    full, inner = _text_masks(path, label, size, stroke, outline)
    tw, th = full.size
    m = _number_matrix(pose, tw, th)
    shrink = min(1.0, _fit_scale(m, tw, th, box))
    m = _matmul(_affine(shrink, 0, 0, 0, shrink, 0), m)
    x0, y0, x1, y1 = _bbox(m, tw, th)
    lo_x, hi_x = box[0] - x0, box[2] - x1
    lo_y, hi_y = box[1] - y0, box[3] - y1
    tx = rng.uniform(lo_x, hi_x) if hi_x > lo_x else (lo_x + hi_x) / 2
    ty = rng.uniform(lo_y, hi_y) if hi_y > lo_y else (lo_y + hi_y) / 2
    m = _matmul(_affine(1, 0, tx, 0, 1, ty), m)
    inv = _inverse(m)
    coeffs = tuple(v / inv[8] for v in inv[:8])
    warp = Image.Transform.PERSPECTIVE
    bicubic = Image.Resampling.BICUBIC
    full_mask = full.transform((w, h), warp, coeffs, bicubic)
    img.paste(outline_color, (0, 0, w, h), full_mask)
    if inner is not None:
        img.paste(
            number_color, (0, 0, w, h), inner.transform((w, h), warp, coeffs, bicubic)
        )
    meta.update(
        {
            "font": font_name,
            "number_color": number_name,
            "outline": outline,
            "outline_color": outline_name if outline else "none",
        }
    )


def render_sample(
    config: SynthConfig, label: str, *, split: str = "train", index: int = 0
) -> tuple[Image.Image, Metadata]:
    """Render a single sample in memory (before JPEG encoding).

    Useful for previews and contact sheets; :func:`generate_dataset` writes the
    same image (JPEG-compressed) to ``<split>/images/<stem>_<index>.jpg``.

    Args:
        config: Generation settings (``out_dir`` is ignored).
        label: Class label, ``"0"`` .. ``"99"`` or ``""``.
        split: One of :data:`SPLITS`.
        index: Image index within its class and split.

    Returns:
        The RGB image and its metadata.

    Raises:
        ValueError: If ``label`` or ``split`` is invalid.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _normalise_classes([label])
    image, _, meta = _render(config, find_fonts(config.fonts), split, label, index)
    return image, meta


# ------------------------------------------------------------------ orchestration

_Task = tuple[str, str, int, str]  # split, label, index, output path
_WORKER_STATE: dict[str, Any] = {}


def _init_worker(cfg: SynthConfig, fonts: dict[str, str]) -> None:
    _WORKER_STATE["cfg"] = cfg
    _WORKER_STATE["fonts"] = fonts


def _run_task(task: _Task) -> Metadata:
    split, label, index, path = task
    cfg: SynthConfig = _WORKER_STATE["cfg"]
    image, quality, meta = _render(cfg, _WORKER_STATE["fonts"], split, label, index)
    image.save(path, format="JPEG", quality=quality)
    return meta


def _file_name(label: str, index: int) -> str:
    return f"{label_to_stem(label)}_{index:05d}.jpg"


def _tasks(cfg: SynthConfig) -> list[_Task]:
    counts = cfg.per_class_counts()
    tasks: list[_Task] = []
    for split in SPLITS:
        image_dir = cfg.out_dir / split / IMAGES_DIRNAME
        for label in cfg.classes:
            for index in range(counts[split]):
                path = image_dir / _file_name(label, index)
                tasks.append((split, label, index, str(path)))
    return tasks


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def dataset_is_complete(config: SynthConfig) -> bool:
    """Whether ``config.out_dir`` holds a finished dataset made with ``config``.

    Args:
        config: The configuration to compare with.

    Returns:
        True if the completion marker exists and the stored configuration matches.
    """
    out = config.out_dir
    if not (out / MARKER_NAME).is_file():
        return False
    return bool(_read_json(out / CONFIG_NAME) == config.fingerprint())


def _prepare_out_dir(cfg: SynthConfig) -> None:
    out = cfg.out_dir
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not cfg.overwrite:
            if (out / MARKER_NAME).is_file():
                reason = "holds a dataset generated with a different configuration"
            else:
                reason = (
                    "is not empty and has no completion marker "
                    f"({MARKER_NAME}; interrupted run or unrelated files)"
                )
            raise SynthError(
                f"output directory {out} {reason}; pass --overwrite "
                "(overwrite=True) to replace it, or choose another directory"
            )
        # Remove only what this generator writes; leave anything else alone.
        (out / MARKER_NAME).unlink(missing_ok=True)
        for name in (CONFIG_NAME, CONFIG_NAME + ".tmp", MARKER_NAME + ".tmp"):
            (out / name).unlink(missing_ok=True)
        for split in SPLITS:
            if (out / split).is_dir():
                shutil.rmtree(out / split)
            elif (out / split).exists():
                (out / split).unlink()
    out.mkdir(parents=True, exist_ok=True)


def _chunksize(n_tasks: int, workers: int) -> int:
    return max(1, min(64, n_tasks // (workers * 8)))


def _iter_metadata(
    cfg: SynthConfig, fonts: dict[str, str], tasks: list[_Task], workers: int
) -> Iterator[Metadata]:
    if workers <= 1:
        _init_worker(cfg, fonts)
        yield from map(_run_task, tasks)
        return
    # "spawn" avoids fork-after-threads hazards when imported next to torch.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(cfg, fonts)) as pool:
        yield from pool.imap(
            _run_task, tasks, chunksize=_chunksize(len(tasks), workers)
        )


def generate_dataset(
    config: SynthConfig, *, log: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Generate the synthetic jersey-number dataset described by ``config``.

    If ``config.out_dir`` already holds a complete dataset generated with the
    same configuration this is a no-op. ``synth_config.json`` is written first
    and the ``.complete`` marker last, so an interrupted run is detectable.

    Args:
        config: Generation settings.
        log: Optional callback receiving human-readable progress messages.

    Returns:
        Number of annotation rows (images) per split.

    Raises:
        SynthError: If the output directory is non-empty and either incomplete
            or generated with a different configuration, and
            ``config.overwrite`` is false.
    """
    emit = log or (lambda _msg: None)
    out = config.out_dir
    if dataset_is_complete(config):
        marker = _read_json(out / MARKER_NAME)
        counts = marker.get("counts") if isinstance(marker, dict) else None
        if isinstance(counts, dict) and set(counts) == set(SPLITS):
            emit(f"dataset already exists at {out} (same config); nothing to do")
            return {split: int(counts[split]) for split in SPLITS}
    _prepare_out_dir(config)

    start = time.perf_counter()
    fonts = find_fonts(config.fonts)
    _write_text_atomic(
        out / CONFIG_NAME, json.dumps(config.fingerprint(), indent=2) + "\n"
    )
    for split in SPLITS:
        (out / split / IMAGES_DIRNAME).mkdir(parents=True, exist_ok=True)
    tasks = _tasks(config)
    workers = min(config.workers or default_workers(), max(1, len(tasks)))
    emit(
        f"rendering {len(tasks)} images ({len(config.classes)} classes, "
        f"{config.per_class_counts()} per class) with {workers} worker(s) to {out}"
    )

    rows: dict[str, list[str]] = {split: [] for split in SPLITS}
    for (split, label, index, _), meta in zip(
        tasks, _iter_metadata(config, fonts, tasks, workers), strict=True
    ):
        row = {
            "image": f"{IMAGES_DIRNAME}/{_file_name(label, index)}",
            "prefix": PREFIX,
            "suffix": label,
            "metadata": meta,
        }
        rows[split].append(json.dumps(row, sort_keys=False))

    for split in SPLITS:
        _write_text_atomic(
            out / split / ANNOTATIONS_NAME, "".join(line + "\n" for line in rows[split])
        )
    counts = {split: len(rows[split]) for split in SPLITS}
    _write_text_atomic(
        out / MARKER_NAME, json.dumps({"counts": counts}, indent=2) + "\n"
    )
    emit(
        f"wrote {sum(counts.values())} images {counts} in "
        f"{time.perf_counter() - start:.1f}s"
    )
    return counts
