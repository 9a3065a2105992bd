"""Evaluation preprocessing rebuilt from ``labels_mapping.json`` alone.

The decode and resize steps are the training pipeline's own functions
(:func:`~classifier_training.data.image_io.load_image`,
:func:`~classifier_training.data.preprocessing.resize_to_input`), so a deployed model
sees exactly the pixels it was validated on; scaling and normalisation are done in
numpy so that the ONNX path needs no torch tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from PIL import Image

from classifier_training.data.image_io import load_image, to_rgb
from classifier_training.data.preprocessing import (
    INTERPOLATION,
    ResizeMode,
    mean_fill,
    resize_to_input,
)

ImageInput = str | Path | Image.Image


class PreprocessingError(ValueError):
    """The mapping describes preprocessing this code does not reproduce."""


@dataclass(frozen=True)
class Preprocessor:
    """Turns images into the normalised ``N x 3 x H x W`` float32 network input.

    Attributes:
        size: Side of the square input.
        mode: ``squash`` or ``letterbox``.
        pad_color: Letterbox padding colour (8-bit RGB).
        mean: Per-channel mean (0-1 scale).
        std: Per-channel standard deviation (0-1 scale).
        scale: Factor from 8-bit values to the 0-1 scale.
    """

    size: int
    mode: ResizeMode
    pad_color: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1.0 / 255.0

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], source: str = "labels mapping"
    ) -> Preprocessor:
        """Build the preprocessing a ``labels_mapping.json`` describes.

        Args:
            mapping: The parsed mapping (see
                :func:`classifier_training.labels_mapping.read_labels_mapping`).
            source: Name of the mapping file, for error messages.

        Returns:
            The preprocessor.

        Raises:
            PreprocessingError: If the described preprocessing is not supported.
        """
        spec: Mapping[str, Any] = mapping.get("preprocessing") or {}
        resize: Mapping[str, Any] = spec.get("resize") or {}
        size = int(mapping["image_size"])
        if "size" in resize and list(resize["size"]) != [size, size]:
            raise PreprocessingError(
                f"{source}: preprocessing.resize.size {resize['size']} does not "
                f"match image_size {size}"
            )
        mode = resize.get("mode", "squash")
        if mode not in ("squash", "letterbox"):
            raise PreprocessingError(f"{source}: unknown resize mode {mode!r}")
        interpolation = resize.get("interpolation", INTERPOLATION)
        if interpolation != INTERPOLATION:
            raise PreprocessingError(
                f"{source}: unsupported interpolation {interpolation!r}"
            )
        for key, expected in (("color_mode", "RGB"), ("layout", "NCHW")):
            if spec.get(key, expected) != expected:
                raise PreprocessingError(
                    f"{source}: unsupported {key} {spec[key]!r} (need {expected})"
                )
        norm = mapping["normalization"]
        m, s = spec.get("mean", norm["mean"]), spec.get("std", norm["std"])
        mean = (float(m[0]), float(m[1]), float(m[2]))
        # Older mappings lack a pad colour: training pads with the mean colour.
        pad = resize.get("pad_color") or mean_fill(mean)
        return cls(
            size=size,
            mode=cast(Literal["squash", "letterbox"], mode),
            pad_color=(int(pad[0]), int(pad[1]), int(pad[2])),
            mean=mean,
            std=(float(s[0]), float(s[1]), float(s[2])),
            scale=float(spec.get("scale", 1.0 / 255.0)),
        )

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
        pixels = np.asarray(resized, dtype=np.float32) * np.float32(self.scale)
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
