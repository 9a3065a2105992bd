"""The deterministic evaluation preprocessing, without torch.

Training (``data/transforms.py``), validation, ``classifier-export`` and both
inference classifiers use these functions, so a deployment that has only
onnxruntime, numpy and Pillow reproduces exactly what the model was evaluated
with: decode to RGB with EXIF orientation applied, resize the whole crop to
``image_size`` (PIL bilinear; ``squash`` or ``letterbox`` padded with the mean
colour), scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel,
lay out as ``N x 3 x H x W`` float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from classifier_training.core.image_io import load_image, to_rgb

# ImageNet statistics: the normalisation of most pretrained weights, and the
# default when neither the config nor the architecture names another.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

ResizeMode = Literal["squash", "letterbox"]
INTERPOLATION = "bilinear"
PIXEL_SCALE = 1.0 / 255.0

ImageInput = str | Path | Image.Image


class PreprocessingSpec(Protocol):
    """The settings preprocessing reads from a record that describes a model
    (e.g. :class:`~classifier_training.core.contract.DeploymentContract`), so this
    module depends on no such record."""

    @property
    def image_size(self) -> int:
        """Side of the square network input."""
        ...

    @property
    def resize_mode(self) -> ResizeMode:
        """``squash`` or ``letterbox``."""
        ...

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean (0-1 scale)."""
        ...

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel standard deviation (0-1 scale)."""
        ...


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


def mean_fill(mean: Sequence[float]) -> tuple[int, int, int]:
    """The normalisation mean as an 8-bit RGB colour (letterbox padding)."""
    r, g, b = (round(255 * m) for m in mean[:3])
    return (r, g, b)


@dataclass(frozen=True)
class Preprocessor:
    """Turns images into the normalised ``N x 3 x H x W`` float32 network input.

    Attributes:
        size: Side of the square input.
        mode: ``squash`` or ``letterbox``.
        mean: Per-channel mean (0-1 scale).
        std: Per-channel standard deviation (0-1 scale).
    """

    size: int
    mode: ResizeMode
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_contract(cls, contract: PreprocessingSpec) -> Preprocessor:
        """The preprocessing a deployment contract (or any such record) describes."""
        return cls(
            contract.image_size, contract.resize_mode, contract.mean, contract.std
        )

    @property
    def pad_color(self) -> tuple[int, int, int]:
        """Letterbox padding colour: the mean colour, as in training."""
        return mean_fill(self.mean)

    def load(self, image: ImageInput) -> Image.Image:
        """Decode (paths) and resize to the network input size.

        Args:
            image: A file path or a PIL image (converted to RGB).

        Returns:
            The resized RGB image.
        """
        rgb = to_rgb(image) if isinstance(image, Image.Image) else load_image(image)
        return resize_to_input(rgb, self.size, self.mode, self.pad_color)

    def to_array(self, resized: Image.Image) -> npt.NDArray[Any]:
        """Scale and normalise a resized image to ``3 x H x W`` float32."""
        pixels = np.asarray(resized, dtype=np.float32) * np.float32(PIXEL_SCALE)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))

    def __call__(self, image: ImageInput) -> npt.NDArray[Any]:
        """Preprocess one image to ``3 x H x W`` float32."""
        return self.to_array(self.load(image))

    def batch(self, images: Sequence[ImageInput]) -> npt.NDArray[Any]:
        """Preprocess several images to one ``N x 3 x H x W`` float32 array."""
        if not images:
            return np.zeros((0, 3, self.size, self.size), dtype=np.float32)
        return np.stack([self(image) for image in images])
