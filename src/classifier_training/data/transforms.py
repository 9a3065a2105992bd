"""Transform presets: one place that turns the data config into pipelines.

The pipeline has three stages, so that the expensive, deterministic part can be
cached (issue: shared image cache) and reproduced exactly at inference time:

1. ``resize_to_input`` (deterministic): the whole crop to ``image_size``.
2. augmentation (train only, random every epoch).
3. ``to_tensor`` + normalisation.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torchvision.transforms import v2

from classifier_training.config import (
    DataModuleConfig,
    DegradationsConfig,
    TransformsConfig,
)
from classifier_training.core.preprocessing import (
    ResizeMode,
    mean_fill,
    resize_to_input,
)
from classifier_training.data.degradations import build_degradations


class ResizeToInput:
    """Picklable callable applying :func:`resize_to_input` with fixed settings."""

    def __init__(self, size: int, mode: ResizeMode, mean: tuple[float, float, float]):
        """Store the resize settings.

        Args:
            size: Output side in pixels.
            mode: ``squash`` or ``letterbox``.
            mean: Normalisation mean; its colour pads letterboxed images.
        """
        self.size = size
        self.mode: ResizeMode = mode
        self.fill = mean_fill(mean)

    def __call__(self, image: Image.Image) -> Image.Image:
        """Resize ``image`` to the network input size."""
        return resize_to_input(image, self.size, self.mode, self.fill)


def _to_normalized_tensor(config: DataModuleConfig) -> list[Any]:
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(config.mean), std=list(config.std)),
    ]


def has_affine(aug: TransformsConfig) -> bool:
    """Whether the preset has any random geometry (both augmentation paths)."""
    return bool(
        aug.rotation_degrees
        or aug.translate
        or aug.scale != (1.0, 1.0)
        or aug.shear_degrees
    )


def has_colour_jitter(aug: TransformsConfig) -> bool:
    """Whether the preset jitters colours (both augmentation paths)."""
    return bool(aug.brightness or aug.contrast or aug.saturation or aug.hue)


def _auto_augment(aug: TransformsConfig, fill: tuple[int, int, int]) -> Any:
    """The ``auto_augment`` policy as a v2 transform (``None`` when off)."""
    magnitude = aug.auto_augment_magnitude
    if aug.auto_augment == "randaugment":
        return v2.RandAugment(
            magnitude=9 if magnitude is None else magnitude, fill=list(fill)
        )
    if aug.auto_augment == "trivialaugment":
        return v2.TrivialAugmentWide(fill=list(fill))
    if aug.auto_augment == "augmix":
        return v2.AugMix(severity=3 if magnitude is None else magnitude)
    return None


def build_augmentation(
    aug: TransformsConfig, fill: tuple[int, int, int], size: int | None = None
) -> list[Any]:
    """Random train-time transforms on an already resized PIL image.

    Order: geometry (flip, random-resized crop, affine), the auto-augment policy,
    colour (jitter, grayscale), then the broadcast degradations, so an image is
    framed first and degraded last, as a camera does. Steps that are switched
    off are left out (no identity placeholders: an unchanged preset draws the
    same random numbers as before).

    Args:
        aug: Augmentation settings.
        fill: Colour for pixels uncovered by the affine transform, the policies
            and a zoom-out.
        size: Output side of the random-resized crop (required when it is on).

    Returns:
        The list of transforms (empty when everything is switched off).

    Raises:
        ValueError: If the random-resized crop is on and ``size`` is missing.
    """
    ops: list[Any] = []
    if aug.horizontal_flip_p > 0:
        ops.append(v2.RandomHorizontalFlip(p=aug.horizontal_flip_p))
    if aug.random_resized_crop:
        if size is None:
            raise ValueError("the random-resized crop needs the output size")
        ops.append(
            v2.RandomResizedCrop(
                size, scale=aug.crop_scale, ratio=aug.crop_ratio, antialias=True
            )
        )
    if has_affine(aug):
        ops.append(
            v2.RandomAffine(
                degrees=aug.rotation_degrees,
                translate=(aug.translate, aug.translate) if aug.translate else None,
                scale=aug.scale,
                shear=aug.shear_degrees or None,
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=list(fill),
            )
        )
    policy = _auto_augment(aug, fill)
    if policy is not None:
        ops.append(policy)
    if has_colour_jitter(aug):
        ops.append(
            v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)
        )
    if aug.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(p=aug.grayscale_p))
    if aug.degradations != DegradationsConfig():
        ops.append(build_degradations(aug.degradations, fill=fill))
    return ops


def build_train_transform(config: DataModuleConfig) -> v2.Compose:
    """Augmentation + normalisation for training (input: resized PIL image)."""
    ops = build_augmentation(
        config.transforms, mean_fill(config.mean), size=config.image_size
    )
    ops += _to_normalized_tensor(config)
    if config.transforms.random_erasing_p > 0:
        ops.append(v2.RandomErasing(p=config.transforms.random_erasing_p))
    return v2.Compose(ops)


def build_uint8_transform() -> v2.Compose:
    """Resized PIL image to ``uint8`` tensor (``data.augment_on=device``, train):
    augmentation and normalisation then run on the batch, on the device."""
    return v2.Compose([v2.PILToTensor()])


def build_eval_transform(config: DataModuleConfig) -> v2.Compose:
    """Normalisation only, for validation, test and inference (resized input)."""
    return v2.Compose(_to_normalized_tensor(config))
