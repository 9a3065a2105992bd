"""Configuration of a synthetic dataset run: the one place every default lives.

:class:`SynthConfig` holds the run parameters and the rendering ranges; the
``classifier-synth`` command line reads its defaults from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier_training.core.errors import ClassifierError
from classifier_training.synthetic.classes import DEFAULT_CLASSES, normalise_classes

__all__ = [
    "DEFAULT_FONTS",
    "DEGRADED_FONTS",
    "DEGRADED_SPLIT",
    "GENERATOR_VERSION",
    "SPLITS",
    "TRACK_PREFIX",
    "FloatRange",
    "SynthConfig",
    "SynthConfigError",
    "SynthError",
    "default_workers",
    "synth_config",
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
# Prefix of the fields that only matter with ``degrade=True``.
_DEGRADE_PREFIX = "degrade"
TRACK_PREFIX = "track"
"""Prefix of the fields that only matter with ``tracks=True`` (``tracks`` too)."""


class SynthError(ClassifierError, RuntimeError):
    """Raised when the output directory is not in a state we may write to."""


class SynthConfigError(ClassifierError, ValueError):
    """A generator setting is out of range (one line per setting)."""


def default_workers() -> int:
    """Default number of worker processes: ``min(2, os.cpu_count())``."""
    return max(1, min(2, os.cpu_count() or 1))


def _within(low: float, high: float) -> AfterValidator:
    """Validator of a ``(lo, hi)`` range field: ``low <= lo <= hi <= high``."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not low <= lo <= hi <= high:
            raise ValueError(f"must satisfy {low} <= lo <= hi <= {high}")
        return value

    return AfterValidator(check)


FloatRange = tuple[float, float]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
QualityRange = Annotated[tuple[int, int], _within(1, 100)]
FrameRange = Annotated[tuple[int, int], _within(1, 10_000)]


class SynthConfig(BaseModel):
    """Everything that controls a synthetic dataset run.

    The first block holds the run parameters; the remaining fields are the
    rendering ranges, kept together so the difficulty can be tuned in one place.
    Ranges are ``(low, high)`` and sampled uniformly per image. Fractions refer to
    the crop height unless stated otherwise. Each field states its own bounds; a
    value outside them raises pydantic's ``ValidationError`` (:func:`synth_config`
    turns it into one line per field).

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
        tracks: Write player tracks instead of independent crops (see
            :mod:`.tracks`): ``per_class`` (``eval_per_class``) tracks per class
            in train (valid, test), each one player seen over several frames.
            Cannot be combined with ``degrade``.
        track_frames_range: Frames per track, an integer drawn from this range.
        track_illegible_prob: Probability that a frame of a numbered track shows
            no number (the player faces away; labelled ``""``).
        track_scale_range: Each frame passes through this fraction of its size
            (the player's distance): down-scaled, then scaled back up.
        track_blur_radius_range: ``blur_radius_range`` of the track frames.
        track_noise_std_range: ``noise_std_range`` of the track frames.
        track_jpeg_quality_range: ``jpeg_quality_range`` of the track frames.
        track_motion_blur_prob: Probability of motion blur on a frame.
        track_motion_blur_range: Its length in pixels at 64 px crop height.
        track_occlusion_prob: Probability that something (an arm, another
            player) covers part of a frame's number.
        track_occlusion_range: Share of the number's width it covers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    out_dir: Path
    per_class: int = Field(default=60, ge=1)
    seed: int = Field(default=0, ge=0)
    image_size: int = Field(default=64, ge=16)
    classes: tuple[str, ...] = DEFAULT_CLASSES
    workers: int | None = Field(default=None, ge=1)
    overwrite: bool = False
    eval_fraction: Probability = 0.2
    min_eval_per_class: int = Field(default=2, ge=0)
    supersample: int = Field(default=2, ge=1)
    fonts: tuple[str, ...] = Field(default=DEFAULT_FONTS, min_length=1)
    aspect_range: Annotated[FloatRange, _within(0.3, 2.0)] = (0.75, 1.0)
    digit_height_range: Annotated[FloatRange, _within(0.05, 0.95)] = (0.40, 0.70)
    condense_range: Annotated[FloatRange, _within(0.3, 1.5)] = (0.75, 1.0)
    max_rotation_deg: float = Field(default=10.0, ge=0.0, le=45.0)
    perspective: float = Field(default=0.06, ge=0.0, le=0.3)
    margin_frac: float = Field(default=0.05, ge=0.0, le=0.3)
    outline_prob: Probability = 0.4
    outline_width_range: Annotated[FloatRange, _within(0.0, 0.3)] = (0.03, 0.065)
    faux_bold_width: float = 0.025
    min_contrast: float = Field(default=3.0, ge=1.0)  # a WCAG ratio
    color_jitter: int = 12
    stripe_prob: Probability = 0.4
    edge_prob: Probability = 0.25
    edge_width_range: Annotated[FloatRange, _within(0.0, 0.4)] = (0.03, 0.10)
    logo_prob: Probability = 0.7
    logo_size_range: Annotated[FloatRange, _within(0.01, 0.9)] = (0.12, 0.28)
    fold_amp_range: Annotated[FloatRange, _within(0.0, 1.0)] = (0.0, 0.12)
    gradient_amp_range: Annotated[FloatRange, _within(0.0, 1.0)] = (0.0, 0.15)
    gain_range: Annotated[FloatRange, _within(0.0, 3.0)] = (0.85, 1.1)
    mesh_prob: Probability = 0.3
    blur_radius_range: Annotated[FloatRange, _within(0.0, 10.0)] = (0.0, 0.9)
    noise_std_range: Annotated[FloatRange, _within(0.0, 100.0)] = (0.0, 6.0)
    jpeg_quality_range: QualityRange = (55, 95)
    degrade: bool = False
    degrade_fonts: tuple[str, ...] = DEGRADED_FONTS
    degrade_scale_range: Annotated[FloatRange, _within(0.05, 1.0)] = (0.3, 0.55)
    degrade_blur_radius_range: Annotated[FloatRange, _within(0.0, 10.0)] = (0.3, 1.2)
    degrade_noise_std_range: Annotated[FloatRange, _within(0.0, 100.0)] = (4.0, 12.0)
    degrade_jpeg_quality_range: QualityRange = (10, 35)
    tracks: bool = False
    track_frames_range: FrameRange = (4, 12)
    track_illegible_prob: Probability = 0.3
    track_scale_range: Annotated[FloatRange, _within(0.05, 1.0)] = (0.35, 1.0)
    track_blur_radius_range: Annotated[FloatRange, _within(0.0, 10.0)] = (0.0, 1.4)
    track_noise_std_range: Annotated[FloatRange, _within(0.0, 100.0)] = (0.0, 10.0)
    track_jpeg_quality_range: QualityRange = (25, 90)
    track_motion_blur_prob: Probability = 0.3
    track_motion_blur_range: Annotated[FloatRange, _within(0.0, 20.0)] = (1.5, 5.0)
    track_occlusion_prob: Probability = 0.25
    track_occlusion_range: Annotated[FloatRange, _within(0.0, 0.9)] = (0.15, 0.5)

    @field_validator("classes")
    @classmethod
    def _normalise_classes(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        return normalise_classes(classes)

    @model_validator(mode="after")
    def _tracks_or_degrade(self) -> SynthConfig:
        if self.tracks and self.degrade:
            raise ValueError(
                "tracks and degrade cannot be combined: write the degraded crops "
                "and the tracks to two folders"
            )
        return self

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
        """Images (with ``tracks``: tracks) per class for each split in :attr:`splits`.

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
            and minus the ``degrade*`` and ``track*`` fields when ``degrade`` and
            ``tracks`` are off, so such a dataset is described as before the
            options existed) plus ``generator_version``, with tuples converted to
            lists.
        """
        data = {
            k: v
            for k, v in self.model_dump().items()
            if k not in _RUNTIME_FIELDS
            and (self.degrade or not k.startswith(_DEGRADE_PREFIX))
            and (self.tracks or not k.startswith(TRACK_PREFIX))
        }
        data["generator_version"] = GENERATOR_VERSION
        normalised: dict[str, Any] = json.loads(json.dumps(data))
        return normalised


def synth_config(**values: Any) -> SynthConfig:
    """A :class:`SynthConfig` from plain values; bad values in one line each.

    Args:
        **values: The fields to set (the others keep their defaults).

    Returns:
        The validated config.

    Raises:
        SynthConfigError: Naming each field out of range and the value given.
    """
    try:
        return SynthConfig(**values)
    except ValidationError as error:
        raise SynthConfigError("\n".join(map(_error_line, error.errors()))) from None


def _error_line(item: Any) -> str:
    """One validation error: ``field: problem (got value)``; a rule across fields
    (no field of its own) is its message alone."""
    message = item["msg"].removeprefix("Value error, ")
    if not item["loc"]:
        return str(message)
    return f"{'.'.join(map(str, item['loc']))}: {message} (got {item.get('input')!r})"
