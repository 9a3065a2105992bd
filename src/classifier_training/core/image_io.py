"""Image decoding that gives the same RGB result whatever the file's mode.

Decompression bombs: a file may declare enormous dimensions in a few bytes.
Pillow only *warns* between ``Image.MAX_IMAGE_PIXELS`` and twice that; here any
image above :data:`MAX_IMAGE_PIXELS` is refused before a single pixel is decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Largest accepted image, in pixels (Pillow's own default threshold, ~89 MP,
#: about 268 MB once decoded to RGB). Bigger files are refused, not decoded.
MAX_IMAGE_PIXELS = 89_478_485

_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def image_threads() -> int:
    """Threads for reading and decoding many images (header checks, caches).

    Pillow releases the GIL while reading and decoding, so threads beyond the
    core count still pay off while some wait on the disk; 16 at most.
    """
    return min(16, 4 * (os.cpu_count() or 1))


class ImageTooLargeError(OSError):
    """An image declares more than :data:`MAX_IMAGE_PIXELS` pixels."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Grayscale, palette (with or without transparency), RGBA, CMYK and 16/32-bit
    integer or float images are handled; 16-bit data is scaled down, not clipped.

    Args:
        image: A decoded PIL image.

    Returns:
        An RGB image.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_MODES:
        array = np.asarray(image, dtype=np.float64)
        peak = float(array.max()) if array.size else 0.0
        if image.mode.startswith("I;16"):
            full_scale = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            full_scale = 1.0  # float images in [0, 1]
        else:
            full_scale = 65535.0 if peak > 255 else 255.0
        scaled = np.clip(np.rint(array * (255.0 / full_scale)), 0, 255)
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def check_size(image: Image.Image, path: str | Path) -> None:
    """Refuse an opened (not yet decoded) image larger than ``MAX_IMAGE_PIXELS``.

    Raises:
        ImageTooLargeError: Naming the declared size.
    """
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"{path}: declared size {width}x{height} exceeds the "
            f"{MAX_IMAGE_PIXELS}-pixel limit (possible decompression bomb); refused"
        )


def open_image(path: str | Path) -> Image.Image:
    """Open an image lazily (header only) and refuse decompression bombs.

    Args:
        path: Image file.

    Returns:
        The opened, not yet decoded image (close it, or use it as a context).

    Raises:
        ImageTooLargeError: If the declared size is above ``MAX_IMAGE_PIXELS``.
        OSError: If the file cannot be opened or identified.
    """
    with warnings.catch_warnings():
        # Our own limit decides; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as error:
            raise ImageTooLargeError(
                f"{path}: possible decompression bomb ({error}); refused"
            ) from None
    try:
        check_size(image, path)
    except ImageTooLargeError:
        image.close()
        raise
    return image


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file to RGB with its EXIF orientation applied.

    Args:
        path: Image file.

    Returns:
        The decoded RGB image (fully loaded; the file is closed).

    Raises:
        ImageTooLargeError: If the declared size is above ``MAX_IMAGE_PIXELS``.
        OSError: If the file is missing, not an image, truncated or corrupt.
    """
    with open_image(path) as handle:
        handle.load()
        image = ImageOps.exif_transpose(handle) or handle
        return to_rgb(image).copy() if image is handle else to_rgb(image)
