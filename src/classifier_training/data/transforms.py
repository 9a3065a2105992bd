"""Transform presets: one place that turns the data config into pipelines.

The pipeline has three stages, so that the expensive, deterministic part can be
cached (issue: shared image cache) and reproduced exactly at inference time:

1. ``resize_to_input`` (deterministic): the whole crop to ``image_size``.
2. augmentation (train only, random every epoch).
3. ``to_tensor`` + normalisation.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from PIL import Image
from torchvision.transforms import v2

from classifier_training.config import DataModuleConfig, TransformsConfig

ResizeMode = Literal["squash", "letterbox"]
INTERPOLATION = "bilinear"


def resize_to_input(
    image: Image.Image,
    size: int,
    mode: ResizeMode,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """Resize a whole crop to ``size x size`` without cutting anything off.

    Args:
        image: RGB image.
        size: Output side in pixels.
        mode: ``squash`` stretches to the square; ``letterbox`` keeps the aspect
            ratio and pads the short side (centred) with ``fill``.
        fill: Padding colour for ``letterbox``.

    Returns:
        The resized image.
    """
    if mode == "squash":
        if image.size == (size, size):
            return image
        return image.resize((size, size), Image.Resampling.BILINEAR)
    width, height = image.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def mean_fill(mean: tuple[float, float, float]) -> tuple[int, int, int]:
    """The normalisation mean as an 8-bit RGB colour (letterbox padding)."""
    r, g, b = (round(255 * m) for m in mean)
    return (r, g, b)


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
    if (
        aug.rotation_degrees
        or aug.translate
        or aug.scale != (1.0, 1.0)
        or aug.shear_degrees
    ):
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
    if aug.brightness or aug.contrast or aug.saturation or aug.hue:
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


def build_eval_transform(config: DataModuleConfig) -> v2.Compose:
    """Normalisation only, for validation, test and inference (resized input)."""
    return v2.Compose(_to_normalized_tensor(config))


def eval_preprocessing_spec(config: DataModuleConfig) -> dict[str, Any]:
    """Describe the evaluation preprocessing exactly, for ``labels_mapping.json``.

    A deployment reproduces it from this alone: decode to RGB with EXIF orientation
    applied, resize the whole image as described, scale to [0, 1], subtract
    ``mean`` and divide by ``std`` per channel, lay out as ``NCHW`` float32.

    Args:
        config: The data config.

    Returns:
        A JSON-serialisable description.
    """
    return {
        "color_mode": "RGB",
        "exif_transpose": True,
        "resize": {
            "mode": config.resize_mode,
            "size": [config.image_size, config.image_size],
            "interpolation": INTERPOLATION,
            "library": "PIL",
            "pad_color": list(mean_fill(config.mean)),
        },
        "scale": 1.0 / 255.0,
        "mean": list(config.mean),
        "std": list(config.std),
        "layout": "NCHW",
        "dtype": "float32",
    }
