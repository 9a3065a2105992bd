"""Configuration of a synthetic dataset run: the one place every default lives.

:class:`SynthConfig` holds the run parameters and the rendering ranges; the
``classifier-synth`` command line reads its defaults from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from classifier_training.core.errors import ClassifierError
from classifier_training.synthetic.classes import DEFAULT_CLASSES, normalise_classes

__all__ = [
    "DEFAULT_FONTS",
    "DEGRADED_FONTS",
    "DEGRADED_SPLIT",
    "GENERATOR_VERSION",
    "SPLITS",
    "FloatRange",
    "SynthConfig",
    "SynthError",
    "default_workers",
]

GENERATOR_VERSION = 1
"""Bumped whenever a change to the renderer alters the produced images."""

SPLITS: tuple[str, ...] = ("train", "valid", "test")

DEGRADED_SPLIT = "test_degraded"
"""Extra test split written with ``degrade=True`` (``--degrade``)."""

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

DEGRADED_FONTS: tuple[str, ...] = (
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif-BoldItalic",
    "STIXGeneralBolIta",
    "DejaVuSans-Oblique",
    "DejaVuSansMono",
)
"""Fonts of the ``test_degraded`` split: bundled ones :data:`DEFAULT_FONTS` omits."""

# Fields that do not influence the produced files.
_RUNTIME_FIELDS: frozenset[str] = frozenset({"out_dir", "workers", "overwrite"})
_PROB_FIELDS = ("outline_prob", "stripe_prob", "edge_prob", "logo_prob", "mesh_prob")
# (low, high) bounds of each range field.
_RANGE_BOUNDS: dict[str, tuple[float, float]] = {
    "aspect_range": (0.3, 2.0),
    "digit_height_range": (0.05, 0.95),
    "condense_range": (0.3, 1.5),
    "outline_width_range": (0.0, 0.3),
    "edge_width_range": (0.0, 0.4),
    "logo_size_range": (0.01, 0.9),
    "fold_amp_range": (0.0, 1.0),
    "gradient_amp_range": (0.0, 1.0),
    "gain_range": (0.0, 3.0),
    "blur_radius_range": (0.0, 10.0),
    "noise_std_range": (0.0, 100.0),
    "degrade_scale_range": (0.05, 1.0),
    "degrade_blur_radius_range": (0.0, 10.0),
    "degrade_noise_std_range": (0.0, 100.0),
}
# Prefix of the fields that only matter with ``degrade=True``.
_DEGRADE_PREFIX = "degrade"

FloatRange = tuple[float, float]


class SynthError(ClassifierError, RuntimeError):
    """Raised when the output directory is not in a state we may write to."""


def default_workers() -> int:
    """Default number of worker processes: ``min(2, os.cpu_count())``."""
    return max(1, min(2, os.cpu_count() or 1))


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
        degrade: Also write the ``test_degraded`` split: test-sized, rendered
            like broadcast crops (see :mod:`.degraded`). Leaves the other splits
            byte-identical.
        degrade_fonts: Fonts of that split; those also in ``fonts`` are skipped.
        degrade_scale_range: That split is rendered, down-scaled to this
            fraction of its size and scaled back up (low resolution).
        degrade_blur_radius_range: Its ``blur_radius_range``.
        degrade_noise_std_range: Its ``noise_std_range``.
        degrade_jpeg_quality_range: Its ``jpeg_quality_range``.
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
    degrade: bool = False
    degrade_fonts: tuple[str, ...] = DEGRADED_FONTS
    degrade_scale_range: FloatRange = (0.3, 0.55)
    degrade_blur_radius_range: FloatRange = (0.3, 1.2)
    degrade_noise_std_range: FloatRange = (4.0, 12.0)
    degrade_jpeg_quality_range: tuple[int, int] = (10, 35)

    def __post_init__(self) -> None:
        """Normalise and validate the fields.

        Raises:
            ValueError: If a field is out of range.
        """
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        object.__setattr__(self, "classes", normalise_classes(self.classes))
        object.__setattr__(self, "fonts", tuple(self.fonts))
        for name in (f.name for f in fields(self)):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        self._validate_run()
        self._validate_rendering()

    def _validate_run(self) -> None:
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
        _check_prob("eval_fraction", self.eval_fraction)

    def _validate_rendering(self) -> None:
        if self.supersample < 1:
            raise ValueError("supersample must be >= 1")
        if not self.fonts:
            raise ValueError("fonts must not be empty")
        for name, (low, high) in _RANGE_BOUNDS.items():
            _check_range(name, getattr(self, name), low, high)
        for name in ("jpeg_quality_range", "degrade_jpeg_quality_range"):
            lo_q, hi_q = getattr(self, name)
            if not 1 <= lo_q <= hi_q <= 100:
                raise ValueError(f"{name} invalid: {getattr(self, name)}")
        for name in _PROB_FIELDS:
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
        """Images per class in the valid and in the test split.

        ``max(min_eval_per_class, round(eval_fraction * per_class))``.
        """
        return max(self.min_eval_per_class, round(self.eval_fraction * self.per_class))

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits written: :data:`SPLITS`, plus :data:`DEGRADED_SPLIT` if on."""
        return (*SPLITS, DEGRADED_SPLIT) if self.degrade else SPLITS

    def per_class_counts(self) -> dict[str, int]:
        """Images per class for each split in :attr:`splits`.

        Returns:
            Mapping ``split -> images per class``.
        """
        n_eval = self.eval_per_class
        counts = {"train": self.per_class, "valid": n_eval, "test": n_eval}
        if self.degrade:
            counts[DEGRADED_SPLIT] = n_eval
        return counts

    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that affects the output.

        Returns:
            The config fields (minus ``out_dir``, ``workers`` and ``overwrite``,
            and minus the ``degrade*`` fields when ``degrade`` is off, so such a
            dataset is described as before the option existed) plus
            ``generator_version``, with tuples converted to lists.
        """
        data = {
            k: v
            for k, v in asdict(self).items()
            if k not in _RUNTIME_FIELDS
            and (self.degrade or not k.startswith(_DEGRADE_PREFIX))
        }
        data["generator_version"] = GENERATOR_VERSION
        normalised: dict[str, Any] = json.loads(json.dumps(data))
        return normalised
