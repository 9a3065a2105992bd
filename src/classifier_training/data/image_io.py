"""Image decoding that gives the same RGB result whatever the file's mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Grayscale, palette (with or without transparency), RGBA, CMYK and 16/32-bit
    integer images are handled; 16-bit data is scaled down, not clipped.

    Args:
        image: A decoded PIL image.

    Returns:
        An RGB image.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        scaled = np.clip(np.rint(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file to RGB with its EXIF orientation applied.

    Args:
        path: Image file.

    Returns:
        The decoded RGB image (fully loaded; the file is closed).
    """
    with Image.open(path) as handle:
        handle.load()
        image = ImageOps.exif_transpose(handle) or handle
        return to_rgb(image).copy() if image is handle else to_rgb(image)
