"""The augmentation registry: one ordered table of the train-time operations.

``data.augment_on`` chooses between two paths that must train on the same recipe:
``workers`` augments one PIL image at a time in the DataLoader workers
(``torchvision.transforms.v2``), ``device`` whole batches on the training device
(``kornia.augmentation`` and :mod:`classifier_training.data.device_ops`, random
parameters per sample). :data:`OPERATIONS` maps the ``data.transforms`` keys
(:class:`~classifier_training.config.TransformsConfig`) to one operation each,
with a builder per path; its ``degradations`` entry runs :data:`DEGRADATIONS`,
one entry per :class:`~classifier_training.config.DegradationsConfig` field.
Both paths build by looping over these tables, so the order is written once: the
order an image goes through, framed first and degraded last as a camera does
(flip, random-resized crop, affine, auto-augment policy, colour jitter,
grayscale, the degradations), then normalisation and what runs after it
(random erasing). Operations that are switched off are left out, not replaced by
an identity. An operation without a device builder runs on the workers path
only (:func:`workers_only_keys`).

Adding an augmentation: a config field, one entry here, its two operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from classifier_training.config import (
    ConfigError,
    DegradationsConfig,
    DownUpScaleSpec,
    GaussianBlurSpec,
    JpegSpec,
    MotionBlurSpec,
    NoiseSpec,
    TransformsConfig,
    ZoomSpec,
)
from classifier_training.data.degradations import (
    RandomDownUpScale,
    RandomGaussianNoise,
    RandomMotionBlur,
    ViaUint8,
)
from classifier_training.data.device_ops import (
    BatchDownUpScale,
    BatchGaussianNoise,
    BatchMotionBlur,
    FilledRandomAffine,
)

__all__ = [
    "DEGRADATIONS",
    "OPERATIONS",
    "BuildContext",
    "Degradation",
    "Operation",
    "build_degradations",
    "device_operations",
    "workers_only_keys",
    "workers_operations",
]

#: Fill colour of the workers path, in the input's value scale.
Fill = float | tuple[float, ...]


@dataclass(frozen=True)
class BuildContext:
    """What the operations need besides their settings.

    Attributes:
        fill: The mean colour as uint8 RGB: pixels a warp uncovers take it.
        size: Output side of the random-resized crop (``data.image_size``).
        compile: Device path: compile the colour jitter with ``torch.compile``
            (``data.compile_augmentation``).
    """

    fill: tuple[int, int, int]
    size: int | None = None
    compile: bool = False

    def unit_fill(self) -> torch.Tensor:
        """The fill colour on the ``[0, 1]`` scale (device path), float32."""
        return torch.tensor(self.fill, dtype=torch.float32) / 255.0

    def crop_size(self) -> int:
        """The random-resized crop's output side.

        Raises:
            ValueError: If it is unknown.
        """
        if self.size is None:
            raise ValueError("the random-resized crop needs the output size")
        return self.size


@dataclass(frozen=True)
class Operation:
    """One entry of :data:`OPERATIONS`.

    Attributes:
        keys: The ``data.transforms`` keys it reads; the first names it.
        on: Whether the settings switch it on.
        workers: Builds it for the workers path (one v2 transform).
        device: Builds it for the device path (one module on a float ``[0, 1]``
            batch, or on the normalised batch if ``normalised``); ``None``: the
            workers path only.
        normalised: Runs after normalisation instead of before.
    """

    keys: tuple[str, ...]
    on: Callable[[TransformsConfig], bool]
    workers: Callable[[TransformsConfig, BuildContext], Any]
    device: Callable[[TransformsConfig, BuildContext], nn.Module] | None
    normalised: bool = False


@dataclass(frozen=True)
class Degradation:
    """One entry of :data:`DEGRADATIONS`; each builder gets the field's spec.

    Attributes:
        workers: ``(spec, fill)`` to a v2 transform that always applies; the
            caller draws ``spec.p``.
        device: ``(spec, fill on the [0, 1] scale)`` to a module that applies
            it to each sample with probability ``spec.p``.
    """

    workers: Callable[[Any, Fill], Any]
    device: Callable[[Any, torch.Tensor], nn.Module]


# --- geometry -------------------------------------------------------------------


def _flip_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.RandomHorizontalFlip(p=aug.horizontal_flip_p)


def _flip_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    import kornia.augmentation as K

    flip: nn.Module = K.RandomHorizontalFlip(p=aug.horizontal_flip_p)
    return flip


def _crop_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.RandomResizedCrop(
        context.crop_size(), scale=aug.crop_scale, ratio=aug.crop_ratio, antialias=True
    )


def _crop_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    import kornia.augmentation as K

    size = context.crop_size()
    crop: nn.Module = K.RandomResizedCrop(
        (size, size), scale=aug.crop_scale, ratio=aug.crop_ratio, p=1.0
    )
    return crop


def _translate(aug: TransformsConfig) -> tuple[float, float] | None:
    return (aug.translate, aug.translate) if aug.translate else None


def _affine_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.RandomAffine(
        degrees=aug.rotation_degrees,
        translate=_translate(aug),
        scale=aug.scale,
        shear=aug.shear_degrees or None,
        interpolation=v2.InterpolationMode.BILINEAR,
        fill=list(context.fill),
    )


def _affine_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    return FilledRandomAffine(
        context.unit_fill(),
        degrees=aug.rotation_degrees,
        translate=_translate(aug),
        scale=aug.scale,
        shear=aug.shear_degrees or None,
        p=1.0,
    )


def _policy_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    """The ``auto_augment`` policy; ``None`` magnitude: torchvision's default."""
    magnitude = aug.auto_augment_magnitude
    fill = list(context.fill)
    if aug.auto_augment == "randaugment":
        return v2.RandAugment(
            magnitude=9 if magnitude is None else magnitude, fill=fill
        )
    if aug.auto_augment == "trivialaugment":
        return v2.TrivialAugmentWide(fill=fill)
    return v2.AugMix(severity=3 if magnitude is None else magnitude)


# --- colour ---------------------------------------------------------------------


def _jitter_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)


def _jitter_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    import kornia.augmentation as K

    jitter: nn.Module = K.ColorJitter(
        aug.brightness, aug.contrast, aug.saturation, aug.hue, p=1.0
    )
    if context.compile:
        # In place: the module's colour functions, each one fused kernel
        # instead of many small operations (the hue shift above all).
        jitter.compile()
    return jitter


def _grayscale_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.RandomGrayscale(p=aug.grayscale_p)


def _grayscale_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    import kornia.augmentation as K

    grayscale: nn.Module = K.RandomGrayscale(p=aug.grayscale_p)
    return grayscale


# --- degradations ---------------------------------------------------------------


def _zoom_workers(spec: ZoomSpec, fill: Fill) -> Any:
    return v2.RandomAffine(
        degrees=0.0,
        scale=spec.scale,
        interpolation=v2.InterpolationMode.BILINEAR,
        fill=fill,
    )


def _zoom_device(spec: ZoomSpec, fill: torch.Tensor) -> nn.Module:
    return FilledRandomAffine(fill, degrees=0.0, scale=spec.scale, p=spec.p)


def _downscale_workers(spec: DownUpScaleSpec, fill: Fill) -> Any:
    return RandomDownUpScale(spec.scale, spec.interpolations)


def _downscale_device(spec: DownUpScaleSpec, fill: torch.Tensor) -> nn.Module:
    return BatchDownUpScale(spec)


def _motion_blur_workers(spec: MotionBlurSpec, fill: Fill) -> Any:
    return RandomMotionBlur(spec.length, spec.angle)


def _motion_blur_device(spec: MotionBlurSpec, fill: torch.Tensor) -> nn.Module:
    return BatchMotionBlur(spec)


def _gaussian_blur_workers(spec: GaussianBlurSpec, fill: Fill) -> Any:
    return v2.GaussianBlur(spec.kernel_size, spec.sigma)


def _gaussian_blur_device(spec: GaussianBlurSpec, fill: torch.Tensor) -> nn.Module:
    import kornia.augmentation as K

    size = spec.kernel_size
    blur: nn.Module = K.RandomGaussianBlur((size, size), spec.sigma, p=spec.p)
    return blur


def _noise_workers(spec: NoiseSpec, fill: Fill) -> Any:
    return RandomGaussianNoise(spec.sigma)


def _noise_device(spec: NoiseSpec, fill: torch.Tensor) -> nn.Module:
    return BatchGaussianNoise(spec)


def _jpeg_workers(spec: JpegSpec, fill: Fill) -> Any:
    return ViaUint8(v2.JPEG(list(spec.quality)))


def _jpeg_device(spec: JpegSpec, fill: torch.Tensor) -> nn.Module:
    import kornia.augmentation as K

    low, high = spec.quality
    jpeg: nn.Module = K.RandomJPEG(jpeg_quality=(float(low), float(high)), p=spec.p)
    return jpeg


#: ``data.transforms.degradations`` field -> its operation on each path, in the
#: order they run.
DEGRADATIONS: dict[str, Degradation] = {
    "zoom": Degradation(_zoom_workers, _zoom_device),
    "downscale": Degradation(_downscale_workers, _downscale_device),
    "motion_blur": Degradation(_motion_blur_workers, _motion_blur_device),
    "gaussian_blur": Degradation(_gaussian_blur_workers, _gaussian_blur_device),
    "noise": Degradation(_noise_workers, _noise_device),
    "jpeg": Degradation(_jpeg_workers, _jpeg_device),
}


def _enabled(spec: DegradationsConfig) -> list[tuple[Degradation, Any]]:
    """The degradations switched on, with their specs, in the table's order."""
    pairs = [(entry, getattr(spec, name)) for name, entry in DEGRADATIONS.items()]
    return [(entry, settings) for entry, settings in pairs if settings.p > 0]


def build_degradations(spec: DegradationsConfig, *, fill: Fill = 0.0) -> Any:
    """One v2 transform applying the enabled degradations of ``spec``.

    Each degradation with ``p > 0`` is wrapped in ``v2.RandomApply`` with its
    probability (``p == 1`` applies it always, without a draw); disabled ones are
    left out, so an all-off spec gives ``v2.Identity``.

    Args:
        spec: Which degradations, with their probabilities and ranges.
        fill: Colour of the border a zoom-out uncovers, in the input's value
            scale (0-255 for PIL and uint8, 0-1 for float).

    Returns:
        The composed transform.
    """
    steps: list[Any] = []
    for entry, settings in _enabled(spec):
        transform = entry.workers(settings, fill)
        steps.append(
            transform
            if settings.p >= 1.0
            else v2.RandomApply([transform], p=settings.p)
        )
    return v2.Compose(steps) if steps else v2.Identity()


def _degradations_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return build_degradations(aug.degradations, fill=context.fill)


def _degradations_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    fill = context.unit_fill()
    return nn.Sequential(
        *(
            entry.device(settings, fill)
            for entry, settings in _enabled(aug.degradations)
        )
    )


# --- after normalisation --------------------------------------------------------


def _erasing_workers(aug: TransformsConfig, context: BuildContext) -> Any:
    return v2.RandomErasing(p=aug.random_erasing_p)


def _erasing_device(aug: TransformsConfig, context: BuildContext) -> nn.Module:
    import kornia.augmentation as K

    # After normalisation value 0 is the mean colour, as on the workers path.
    erasing: nn.Module = K.RandomErasing(p=aug.random_erasing_p)
    return erasing


#: Name -> the operation and the ``data.transforms`` keys it reads, in the order
#: they run. Every key of ``TransformsConfig`` belongs to exactly one entry.
OPERATIONS: dict[str, Operation] = {
    "horizontal_flip": Operation(
        ("horizontal_flip_p",),
        lambda aug: aug.horizontal_flip_p > 0,
        _flip_workers,
        _flip_device,
    ),
    "random_resized_crop": Operation(
        ("crop_scale", "crop_ratio"),
        lambda aug: aug.random_resized_crop,
        _crop_workers,
        _crop_device,
    ),
    "affine": Operation(
        ("rotation_degrees", "translate", "scale", "shear_degrees"),
        lambda aug: aug.has_affine,
        _affine_workers,
        _affine_device,
    ),
    # kornia's policies are not torchvision's: the workers path only.
    "auto_augment": Operation(
        ("auto_augment", "auto_augment_magnitude"),
        lambda aug: aug.auto_augment != "none",
        _policy_workers,
        None,
    ),
    "colour_jitter": Operation(
        ("brightness", "contrast", "saturation", "hue"),
        lambda aug: aug.has_colour_jitter,
        _jitter_workers,
        _jitter_device,
    ),
    "grayscale": Operation(
        ("grayscale_p",),
        lambda aug: aug.grayscale_p > 0,
        _grayscale_workers,
        _grayscale_device,
    ),
    "degradations": Operation(
        ("degradations",),
        lambda aug: aug.degradations.enabled,
        _degradations_workers,
        _degradations_device,
    ),
    "random_erasing": Operation(
        ("random_erasing_p",),
        lambda aug: aug.random_erasing_p > 0,
        _erasing_workers,
        _erasing_device,
        normalised=True,
    ),
}


def _switched_on(aug: TransformsConfig, normalised: bool) -> list[Operation]:
    return [
        op for op in OPERATIONS.values() if op.normalised == normalised and op.on(aug)
    ]


def workers_only_keys(aug: TransformsConfig) -> list[str]:
    """The keys switched on in ``aug`` that only the workers path implements.

    Args:
        aug: The augmentation settings (``data.transforms``).

    Returns:
        ``data.transforms.*`` keys, empty when the device path has them all.
    """
    return [
        f"data.transforms.{op.keys[0]}"
        for op in OPERATIONS.values()
        if op.device is None and op.on(aug)
    ]


def workers_operations(
    aug: TransformsConfig, context: BuildContext, *, normalised: bool = False
) -> list[Any]:
    """The switched-on operations as v2 transforms of one image, in order.

    Args:
        aug: The augmentation settings.
        context: Fill colour and output size.
        normalised: The operations that run after normalisation instead of
            those before it.

    Returns:
        The transforms (empty when everything is switched off).

    Raises:
        ValueError: If the random-resized crop is on and the size is missing.
    """
    return [op.workers(aug, context) for op in _switched_on(aug, normalised)]


def device_operations(
    aug: TransformsConfig, context: BuildContext, *, normalised: bool = False
) -> list[nn.Module]:
    """The switched-on operations as batched modules, in order.

    Args:
        aug: The augmentation settings.
        context: Fill colour, output size and whether to compile the jitter.
        normalised: The operations that run after normalisation instead of
            those before it.

    Returns:
        The modules (empty when everything is switched off).

    Raises:
        ConfigError: If an operation that only the workers path has is on:
            the device path refuses to train on another recipe.
        ValueError: If the random-resized crop is on and the size is missing.
    """
    workers_only = workers_only_keys(aug)
    if workers_only:
        raise ConfigError(
            f"data.augment_on=device: {', '.join(workers_only)} run only on the "
            "workers path; set data.augment_on=workers or switch them off"
        )
    modules: list[nn.Module] = []
    for op in _switched_on(aug, normalised):
        assert op.device is not None  # workers-only operations refused above
        modules.append(op.device(aug, context))
    return modules
