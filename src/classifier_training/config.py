"""Validated configuration of the data pipeline (pydantic v2).

Hydra composes the YAML; these models check it once at start-up so that a typo or
an impossible value fails in the first second of a run, not hours into it. Their
defaults are the only ones: ``train.py`` registers them as the config nodes
``data/base`` and ``transforms/digits`` that the YAML files start from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifier_training.core.errors import ClassifierError
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.core.validation import BadImagePolicy

CacheMode = Literal["none", "ram", "disk", "auto"]  # data.cache


class ConfigError(ClassifierError, ValueError):
    """The composed configuration cannot be used (the message names the key)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplerConfig(_Frozen):
    """How training batches are drawn.

    Attributes:
        mode: ``disabled`` shuffles the train split once per epoch; ``auto`` draws
            every class equally often (weights inverse to class frequency);
            ``manual`` draws each class in proportion to ``class_weights``.
        class_weights: Relative draw probability per class name (``manual`` mode).
            Classes not listed get 1.0; a name that is not a train class is an error.
        num_samples: Draws per epoch for the weighted modes (default: train rows).
    """

    mode: Literal["disabled", "auto", "manual"] = "auto"
    class_weights: dict[str, float] | None = None
    num_samples: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_manual(self) -> SamplerConfig:
        if self.mode == "manual" and not self.class_weights:
            raise ValueError("sampler.mode=manual needs sampler.class_weights")
        if self.class_weights and any(w < 0 for w in self.class_weights.values()):
            raise ValueError("sampler.class_weights must be >= 0")
        return self


class TransformsConfig(_Frozen):
    """Train-time augmentation. Defaults suit digits: no flips, small geometry.

    Val/test never augment; they only resize the whole crop (see ``resize_mode``).

    Attributes:
        rotation_degrees: Max absolute rotation.
        translate: Max shift as a fraction of the image size.
        scale: Random zoom range.
        shear_degrees: Max absolute shear.
        brightness: Colour-jitter strength for brightness.
        contrast: Colour-jitter strength for contrast.
        saturation: Colour-jitter strength for saturation.
        hue: Colour-jitter strength for hue (at most 0.5).
        grayscale_p: Probability of converting to grayscale.
        horizontal_flip_p: Probability of a horizontal flip (0 for digits).
        random_erasing_p: Probability of erasing a random rectangle.
    """

    rotation_degrees: float = Field(default=8.0, ge=0, le=180)
    translate: float = Field(default=0.06, ge=0, le=1)
    scale: tuple[float, float] = (0.9, 1.1)
    shear_degrees: float = Field(default=5.0, ge=0, le=90)
    brightness: float = Field(default=0.3, ge=0)
    contrast: float = Field(default=0.3, ge=0)
    saturation: float = Field(default=0.3, ge=0)
    hue: float = Field(default=0.05, ge=0, le=0.5)
    grayscale_p: float = Field(default=0.05, ge=0, le=1)
    horizontal_flip_p: float = Field(default=0.0, ge=0, le=1)
    random_erasing_p: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check_scale(self) -> TransformsConfig:
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(
                f"transforms.scale must satisfy 0 < low <= high, got {self.scale}"
            )
        return self


class DataModuleConfig(_Frozen):
    """Everything the data module needs; one source of truth for the image size.

    Attributes:
        data_root: Folder with ``train/``, ``valid/`` (or ``val/``) and optional
            ``test/`` splits, each in the JSONL or class-per-folder layout.
        image_size: Side of the square network input; drives transforms, export
            and inference.
        resize_mode: ``squash`` resizes the whole crop to a square (nothing cut
            off); ``letterbox`` keeps the aspect ratio and pads with the mean colour.
        batch_size: Images per batch.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory (only used when a GPU is the accelerator).
        mean: Normalisation mean (RGB, 0-1 scale). ``data.mean: null`` in the
            config (its default) means the model's own (``train.py`` fills it in
            from ``model.arch``); ImageNet's when built in Python.
        std: Normalisation standard deviation (RGB, 0-1 scale); as ``mean``.
        sampler: How training batches are drawn.
        transforms: Train-time augmentation.
        on_bad_image: ``error`` stops at start-up on unreadable images (and names
            the file if one fails later); ``skip`` leaves them out at start-up and
            replaces a row whose image fails at load time by the next row. Skipped
            counts are logged and saved in ``metrics.json``.
        cache: Decoded-image cache shared by all DataLoader workers: ``none``,
            ``ram``, ``disk`` or ``auto`` (RAM when it fits comfortably, else disk).
        cache_dir: Where the disk cache lives (default ``DATA_ROOT/.cache``).
    """

    data_root: Path
    image_size: int = Field(default=224, ge=8, le=4096)
    resize_mode: Literal["squash", "letterbox"] = "squash"
    batch_size: int = Field(default=64, gt=0)
    num_workers: int = Field(default=2, ge=0)
    pin_memory: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sampler: SamplerConfig = SamplerConfig()
    transforms: TransformsConfig = TransformsConfig()
    on_bad_image: BadImagePolicy = "error"
    cache: CacheMode = "none"
    cache_dir: Path | None = None

    @model_validator(mode="after")
    def _check_std(self) -> DataModuleConfig:
        if any(s <= 0 for s in self.std):
            raise ValueError(f"data.std must be > 0, got {self.std}")
        return self


def format_validation_error(error: ValidationError, prefix: str) -> str:
    """Render a pydantic error as short ``prefix.key: message`` lines.

    Args:
        error: The validation error.
        prefix: The config key the model was built from, e.g. ``"data"``.

    Returns:
        One line per problem, naming the full config key.
    """
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in (prefix, *item["loc"]))
        if item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key (check the spelling)")
        else:
            lines.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def load_data_config(values: dict[str, Any]) -> DataModuleConfig:
    """Validate a plain ``data`` mapping into a ``DataModuleConfig``.

    Args:
        values: The ``data`` section (``data.transforms`` included).

    Returns:
        The validated config.

    Raises:
        ConfigError: With one line per problem, each naming the ``data.*`` key.
    """
    try:
        return DataModuleConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError(
            "invalid data config:\n" + format_validation_error(error, "data")
        ) from None
