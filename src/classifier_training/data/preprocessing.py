"""The deterministic evaluation preprocessing, without torch.

Training (``transforms.py``), ``labels_mapping.json`` and the ONNX inference path
all use these, so a deployment that has only onnxruntime, numpy and Pillow
reproduces exactly what the model was evaluated with.
"""

from __future__ import annotations

from typing import Any, Literal

from PIL import Image

from classifier_training.config import DataModuleConfig

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
