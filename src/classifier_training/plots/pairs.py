"""Pairs of images side by side with a score (near-duplicates across splits)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from classifier_training.plots.grid import BACKGROUND, TEXT, WRONG


@dataclass(frozen=True)
class PairTile:
    """Two images and what to write beside them.

    Attributes:
        left: ``H x W x 3`` uint8 pixels.
        right: The other image.
        score: The pair's similarity.
        captions: Lines written beside the pair (e.g. ``split: path`` of each).
    """

    left: npt.NDArray[np.uint8]
    right: npt.NDArray[np.uint8]
    score: float
    captions: tuple[str, ...]


def _fitted(image: npt.NDArray[np.uint8], tile: int) -> Image.Image:
    """The image scaled to fit ``tile`` (aspect kept), centred on the background."""
    picture = Image.fromarray(image)
    scale = tile / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (tile, tile), BACKGROUND)
    canvas.paste(picture, ((tile - size[0]) // 2, (tile - size[1]) // 2))
    return canvas


def render_pairs(
    pairs: Sequence[PairTile], title: str, tile: int = 96, text_width: int = 520
) -> Image.Image:
    """One pair per row, the two images side by side, score and captions beside.

    Args:
        pairs: The pairs, in the order drawn (most similar first, as found).
        title: Line at the top.
        tile: Side of each image in pixels.
        text_width: Room for the captions, in pixels.

    Returns:
        The RGB picture.
    """
    font = ImageFont.load_default(size=max(10, tile // 8))
    head_font = ImageFont.load_default(size=max(12, tile // 6))
    pad = 8
    heading = max(12, tile // 6) + 2 * pad
    row_height = tile + pad
    width = 3 * pad + 2 * tile + pad + text_width
    canvas = Image.new(
        "RGB", (width, heading + row_height * len(pairs) + pad), BACKGROUND
    )
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=TEXT, font=head_font)
    line = max(10, tile // 8) + 4
    for n, pair in enumerate(pairs):
        y = heading + n * row_height
        canvas.paste(_fitted(pair.left, tile), (pad, y))
        canvas.paste(_fitted(pair.right, tile), (2 * pad + tile, y))
        x = 3 * pad + 2 * tile + pad
        draw.text((x, y), f"score {pair.score:.3f}", fill=WRONG, font=font)
        for k, caption in enumerate(pair.captions):
            draw.text((x, y + (k + 1) * line), caption, fill=TEXT, font=font)
    return canvas
