"""The augmentation preview: training images as the network sees them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from classifier_training.plots.grid import BACKGROUND, TEXT

MIXED = (40, 90, 200)  # caption colour of a mixed (MixUp/CutMix) image


@dataclass
class AugmentedTile:
    """One augmented draw of a training image and its (possibly soft) target.

    Attributes:
        image: ``H x W x 3`` uint8 pixels (un-normalised).
        target: ``(class name, share)`` pairs, largest share first; one pair
            with share 1.0 for an unmixed image.
    """

    image: npt.NDArray[np.uint8]
    target: Sequence[tuple[str, float]]


def target_caption(target: Sequence[tuple[str, float]]) -> str:
    """``"23"`` for a hard label, ``"23 62% / 7 38%"`` for a mixed one."""
    if len(target) == 1:
        return target[0][0]
    return " / ".join(f"{name} {share:.0%}" for name, share in target)


def render_augmentation_grid(
    rows: Sequence[tuple[str, Sequence[AugmentedTile]]],
    title: str,
    tile: int = 96,
) -> Image.Image:
    """Draw one row per training image: its label, then its augmented draws.

    Args:
        rows: ``(heading, draws)`` per image; the heading names the image.
        title: Line at the top.
        tile: Side of each image tile in pixels.

    Returns:
        The RGB grid.
    """
    font_size = max(9, tile // 9)
    font = ImageFont.load_default(size=font_size)
    head_font = ImageFont.load_default(size=max(12, tile // 6))
    pad, caption = 6, font_size + 6
    label_w = tile + pad
    columns = max((len(draws) for _, draws in rows), default=0)
    cell_w, cell_h = tile + pad, tile + caption + pad
    heading_h = max(12, tile // 6) + 10
    width = pad + label_w + columns * cell_w
    canvas = Image.new("RGB", (width, heading_h + pad + len(rows) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=TEXT, font=head_font)
    for r, (heading, draws) in enumerate(rows):
        y = heading_h + pad + r * cell_h
        draw.text((pad, y + tile // 2 - font_size), heading, fill=TEXT, font=font)
        for c, draw_tile in enumerate(draws):
            x = pad + label_w + c * cell_w
            picture = Image.fromarray(draw_tile.image).resize(
                (tile, tile), Image.Resampling.NEAREST
            )
            canvas.paste(picture, (x, y))
            text = target_caption(draw_tile.target)
            while text and draw.textlength(text, font=font) > tile + pad - 2:
                text = text[:-1]
            color = MIXED if len(draw_tile.target) > 1 else TEXT
            draw.text((x, y + tile + 2), text, fill=color, font=font)
    return canvas
