"""Validated configuration of the data pipeline (pydantic v2).

Hydra composes the YAML; these models check it once at start-up so that a typo or
an impossible value fails in the first second of a run, not hours into it. Their
defaults are the only ones: ``train.py`` registers them as the config nodes
``data/base`` and ``transforms/digits`` that the YAML files start from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier_training.core.errors import ClassifierError
from classifier_training.core.groups import parse_group_key
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.core.validation import BadImagePolicy

CacheMode = Literal["none", "ram", "disk", "auto"]  # data.cache
AugmentOn = Literal["auto", "workers", "device"]  # data.augment_on
# data.transforms.auto_augment: torchvision v2 policies.
AutoAugment = Literal["none", "randaugment", "trivialaugment", "augmix"]


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
        num_samples: Draws per epoch for the weighted modes (default: train rows),
            shared among the processes and rounded down to whole batches
            (:func:`~classifier_training.data.sampler.draws_per_rank`).
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


# Up-scaling interpolations of data.transforms.degradations.downscale.
Interpolation = Literal["bilinear", "nearest"]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    p: float = Field(default=0.0, ge=0, le=1)
    """Probability of applying this degradation to an image."""


class _RangeSpec(_Spec):
    @model_validator(mode="after")
    def _ordered(self) -> _RangeSpec:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{name} must be (low, high) with low <= high")
        return self


class ZoomSpec(_RangeSpec):
    """Zoom in (> 1) or out (< 1) around the centre, size kept: ``v2.RandomAffine``.

    Attributes:
        p: Probability of applying it.
        scale: ``(low, high)`` zoom factor.
    """

    scale: tuple[float, float] = Field(default=(0.75, 1.25))

    @model_validator(mode="after")
    def _positive(self) -> ZoomSpec:
        if self.scale[0] <= 0:
            raise ValueError("zoom.scale must be > 0")
        return self


class DownUpScaleSpec(_RangeSpec):
    """Down-scale then up-scale: :class:`RandomDownUpScale`.

    Attributes:
        p: Probability of applying it.
        scale: ``(low, high)`` size factor in ``(0, 1]``.
        interpolations: Up-scaling modes drawn uniformly (``nearest`` pixelates).
    """

    scale: tuple[float, float] = (0.25, 0.6)
    interpolations: tuple[Interpolation, ...] = Field(
        default=("bilinear", "nearest"), min_length=1
    )

    @model_validator(mode="after")
    def _in_unit(self) -> DownUpScaleSpec:
        if not (self.scale[0] > 0 and self.scale[1] <= 1):
            raise ValueError("downscale.scale must lie in (0, 1]")
        return self


class MotionBlurSpec(_RangeSpec):
    """Motion blur: :class:`RandomMotionBlur`.

    Attributes:
        p: Probability of applying it.
        length: ``(low, high)`` line length in pixels.
        angle: ``(low, high)`` direction in degrees.
    """

    length: tuple[int, int] = (3, 7)
    angle: tuple[float, float] = (0.0, 180.0)

    @model_validator(mode="after")
    def _positive(self) -> MotionBlurSpec:
        if self.length[0] < 1:
            raise ValueError("motion_blur.length must be >= 1")
        return self


class GaussianBlurSpec(_RangeSpec):
    """Gaussian (defocus) blur: ``v2.GaussianBlur``.

    Attributes:
        p: Probability of applying it.
        kernel_size: Odd kernel side in pixels.
        sigma: ``(low, high)`` standard deviation in pixels.
    """

    kernel_size: int = Field(default=5, ge=1)
    sigma: tuple[float, float] = (0.3, 1.5)

    @model_validator(mode="after")
    def _odd(self) -> GaussianBlurSpec:
        if self.kernel_size % 2 == 0:
            raise ValueError("gaussian_blur.kernel_size must be odd")
        if self.sigma[0] <= 0:
            raise ValueError("gaussian_blur.sigma must be > 0")
        return self


class NoiseSpec(_RangeSpec):
    """Sensor noise: :class:`RandomGaussianNoise`.

    Attributes:
        p: Probability of applying it.
        sigma: ``(low, high)`` standard deviation on the ``[0, 1]`` scale.
    """

    sigma: tuple[float, float] = (0.01, 0.05)

    @model_validator(mode="after")
    def _non_negative(self) -> NoiseSpec:
        if self.sigma[0] < 0:
            raise ValueError("noise.sigma must be >= 0")
        return self


class JpegSpec(_RangeSpec):
    """JPEG re-compression: ``v2.JPEG`` (through :class:`ViaUint8`).

    Attributes:
        p: Probability of applying it.
        quality: ``(low, high)`` JPEG quality, integers in ``[1, 100]``.
    """

    quality: tuple[int, int] = (20, 70)

    @model_validator(mode="after")
    def _in_range(self) -> JpegSpec:
        if not (self.quality[0] >= 1 and self.quality[1] <= 100):
            raise ValueError("jpeg.quality must lie in [1, 100]")
        return self


class DegradationsConfig(BaseModel):
    """Broadcast degradations, each with a probability; all off by default.

    They run in the order of the augmentation registry
    (``classifier_training.data.augmentations``), the order a broadcast image
    goes through: framing (zoom), resolution, motion, focus, sensor noise and
    finally compression. Every field has one entry there.

    Attributes:
        zoom: Zoom in/out.
        downscale: Down-scale then up-scale (pixelate).
        motion_blur: Motion blur.
        gaussian_blur: Gaussian blur.
        noise: Gaussian noise.
        jpeg: JPEG re-compression.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    zoom: ZoomSpec = ZoomSpec()
    downscale: DownUpScaleSpec = DownUpScaleSpec()
    motion_blur: MotionBlurSpec = MotionBlurSpec()
    gaussian_blur: GaussianBlurSpec = GaussianBlurSpec()
    noise: NoiseSpec = NoiseSpec()
    jpeg: JpegSpec = JpegSpec()

    @property
    def enabled(self) -> bool:
        """Whether any degradation is on (``p > 0``)."""
        return any(spec.p > 0 for _, spec in self)


class TransformsConfig(_Frozen):
    """Train-time augmentation. Defaults suit digits: no flips, small geometry.

    Val/test never augment; they only resize the whole crop (see ``resize_mode``).
    Each field is read by one operation of the augmentation registry
    (``classifier_training.data.augmentations``), which builds it for both
    paths of ``data.augment_on`` in one order.

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
        random_erasing_p: Probability of erasing a random rectangle (after
            normalisation, filled with 0: the mean colour).
        crop_scale: Random-resized crop: ``(low, high)`` area fraction of the
            (already resized) image that is cropped and scaled back to
            ``image_size``. ``(1, 1)`` with ``crop_ratio`` ``(1, 1)``: no crop.
        crop_ratio: Random-resized crop: ``(low, high)`` aspect-ratio range.
        auto_augment: Automatic policy: ``none``, ``randaugment``,
            ``trivialaugment`` or ``augmix`` (``torchvision.transforms.v2``).
        auto_augment_magnitude: Its strength; ``null`` is torchvision's default.
            RandAugment: magnitude 0-30 (default 9); AugMix: severity 1-10
            (default 3); TrivialAugment draws its own, so it must stay ``null``.
        degradations: Broadcast degradations (zoom, down-scale, blur, noise,
            JPEG), each with a probability; applied after the geometric and
            colour steps, before normalisation.
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
    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    auto_augment: AutoAugment = "none"
    auto_augment_magnitude: int | None = Field(default=None, ge=0, le=30)
    degradations: DegradationsConfig = DegradationsConfig()

    @model_validator(mode="after")
    def _check_scale(self) -> TransformsConfig:
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(
                f"transforms.scale must satisfy 0 < low <= high, got {self.scale}"
            )
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(
                "transforms.crop_scale must satisfy 0 < low <= high <= 1, "
                f"got {self.crop_scale}"
            )
        low, high = self.crop_ratio
        if not 0 < low <= high:
            raise ValueError(
                "transforms.crop_ratio must satisfy 0 < low <= high, "
                f"got {self.crop_ratio}"
            )
        return self

    @model_validator(mode="after")
    def _check_magnitude(self) -> TransformsConfig:
        magnitude = self.auto_augment_magnitude
        if magnitude is None:
            return self
        if self.auto_augment in ("none", "trivialaugment"):
            raise ValueError(
                "transforms.auto_augment_magnitude is only used by randaugment and "
                f"augmix (auto_augment={self.auto_augment}); set it to null"
            )
        if self.auto_augment == "augmix" and not 1 <= magnitude <= 10:
            raise ValueError(
                "transforms.auto_augment_magnitude is AugMix's severity, 1-10, "
                f"got {magnitude}"
            )
        return self

    @property
    def random_resized_crop(self) -> bool:
        """Whether the random-resized crop is on."""
        return self.crop_scale != (1.0, 1.0) or self.crop_ratio != (1.0, 1.0)

    @property
    def has_affine(self) -> bool:
        """Whether the random affine (rotation, shift, zoom, shear) is on."""
        return bool(
            self.rotation_degrees
            or self.translate
            or self.scale != (1.0, 1.0)
            or self.shear_degrees
        )

    @property
    def has_colour_jitter(self) -> bool:
        """Whether the colour jitter is on."""
        return bool(self.brightness or self.contrast or self.saturation or self.hue)


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
        num_workers: DataLoader worker processes (0 on Apple silicon, MPS).
        pin_memory: Pin host memory (only used when a GPU is the accelerator).
        persistent_workers: Keep the worker processes between epochs.
        prefetch_factor: Batches each worker loads ahead (``null``: PyTorch's 2).
        augment_on: Where train-time augmentation runs. ``workers``: per image,
            on PIL images, in the DataLoader workers. ``device``: the loader only
            serves the resized ``uint8`` images and the same augmentation runs on
            whole batches on the training device (per-sample random parameters).
            ``auto``: ``device`` on a GPU, and on a CPU for images up to
            ``data.device_transforms.CPU_BATCHED_MAX_SIZE`` without
            degradations (where it is the faster path: ``benchmarks/README.md``),
            else ``workers``; ``workers`` whenever the preset has steps only that
            path implements.
        compile_augmentation: On the ``device`` path, compile the colour
            jitter with ``torch.compile`` on the first batch: it costs seconds
            once and makes every batch's jitter cheaper (how much:
            ``benchmarks/README.md``). If compilation fails, a warning and the
            uncompiled jitter (same augmentation).
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
        group_key: The JSONL ``metadata`` field (a dotted path, e.g. ``track_id``)
            that says which rows belong together (one player track); ``null``:
            every row stands alone. See :mod:`classifier_training.core.groups`.
        check_leakage: Before fitting, count near-duplicate images across the
            splits (and, with ``group_key``, groups in several splits), warn in
            one line and record the counts in ``metrics.json`` (``data.leakage``).
            Signatures and counts are kept in ``cache_dir``, so only the first run
            on a dataset decodes and searches; ``false`` skips it.
        exclude_rows: A row list (:mod:`classifier_training.core.row_refs`): a
            text file naming train rows to leave out of training, one per line
            (``train/annotations.jsonl:17``, or the image path of a class-folder
            row, relative to ``data_root``). The image cache still holds every
            train row, so runs that leave out different rows share it.
            ``classifier-audit-labels`` trains each fold with one and writes
            ``flagged_train_rows.txt``, to retrain without the flagged rows.
    """

    data_root: Path
    image_size: int = Field(default=224, ge=8, le=4096)
    resize_mode: Literal["squash", "letterbox"] = "squash"
    batch_size: int = Field(default=64, gt=0)
    num_workers: int = Field(default=2, ge=0)
    pin_memory: bool = True
    persistent_workers: bool = True
    prefetch_factor: int | None = Field(default=None, ge=1)
    augment_on: AugmentOn = "auto"
    compile_augmentation: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sampler: SamplerConfig = SamplerConfig()
    transforms: TransformsConfig = TransformsConfig()
    on_bad_image: BadImagePolicy = "error"
    cache: CacheMode = "none"
    cache_dir: Path | None = None
    group_key: str | None = None
    check_leakage: bool = True
    exclude_rows: Path | None = None

    @field_validator("group_key")
    @classmethod
    def _check_group_key(cls, key: str | None) -> str | None:
        if key is not None:
            parse_group_key(key)
        return key

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
