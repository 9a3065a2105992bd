"""Transform presets: one place that turns the data config into pipelines.

The pipeline has three stages, so that the expensive, deterministic part can be
cached (``data.cache``) and reproduced exactly at inference time:

1. ``resize_to_input`` (deterministic): the whole crop to ``image_size``.
2. augmentation (train only, random every epoch): the workers path of the
   augmentation registry (:mod:`classifier_training.data.augmentations`).
3. ``to_tensor`` + normalisation (and the registry's operations that run after
   it).
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
from classifier_training.data.augmentations import (
    BuildContext,
    workers_operations,
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


def build_augmentation(
    aug: TransformsConfig, fill: tuple[int, int, int], size: int | None = None
) -> list[Any]:
    """Random train-time transforms on an already resized PIL image.

    The operations of the augmentation registry that run before normalisation,
    in its order (:mod:`classifier_training.data.augmentations`).

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
    return workers_operations(aug, BuildContext(fill, size))


def build_train_transform(config: DataModuleConfig) -> v2.Compose:
    """Augmentation + normalisation for training (input: resized PIL image)."""
    aug = config.transforms
    context = BuildContext(mean_fill(config.mean), config.image_size)
    return v2.Compose(
        [
            *workers_operations(aug, context),
            *_to_normalized_tensor(config),
            *workers_operations(aug, context, normalised=True),
        ]
    )


def build_uint8_transform() -> v2.Compose:
    """Resized PIL image to ``uint8`` tensor (``data.augment_on=device``, train):
    augmentation and normalisation then run on the batch, on the device."""
    return v2.Compose([v2.PILToTensor()])


def build_eval_transform(config: DataModuleConfig) -> v2.Compose:
    """Normalisation only, for validation, test and inference (resized input)."""
    return v2.Compose(_to_normalized_tensor(config))
