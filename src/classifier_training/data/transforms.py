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

from classifier_training.config import DataModuleConfig, TransformsConfig
from classifier_training.core.preprocessing import (
    ResizeMode,
    mean_fill,
    resize_to_input,
)


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


def build_augmentation(aug: TransformsConfig, fill: tuple[int, int, int]) -> list[Any]:
    """Random train-time transforms on an already resized PIL image.

    Args:
        aug: Augmentation settings.
        fill: Colour for pixels uncovered by the affine transform.

    Returns:
        The list of transforms (empty when everything is switched off).
    """
    ops: list[Any] = []
    if aug.horizontal_flip_p > 0:
        ops.append(v2.RandomHorizontalFlip(p=aug.horizontal_flip_p))
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
    if has_colour_jitter(aug):
        ops.append(
            v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)
        )
    if aug.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(p=aug.grayscale_p))
    return ops


def build_train_transform(config: DataModuleConfig) -> v2.Compose:
    """Augmentation + normalisation for training (input: resized PIL image)."""
    ops = build_augmentation(config.transforms, mean_fill(config.mean))
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
