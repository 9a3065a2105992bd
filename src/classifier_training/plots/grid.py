"""Image grids with true/predicted labels (sample predictions, mistakes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

CORRECT = (40, 160, 60)
WRONG = (210, 40, 40)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


@dataclass
class GridTile:
    """One image with its true and predicted class, for :func:`render_grid`.

    Attributes:
        index: Position in its split.
        image: ``H x W x 3`` uint8 pixels (un-normalised).
        label: True class index.
        pred: Predicted class index.
        confidence: Softmax probability of ``pred``.
    """

    index: int
    image: npt.NDArray[np.uint8]
    label: int
    pred: int
    confidence: float


def confidence_text(confidence: float) -> str:
    """A confidence beside a class name: ``(2 %)``, so that ``27 (2 %)`` never
    reads as 27.2 %."""
    return f"({100 * confidence:.0f} %)"


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """Cut ``text`` with an ellipsis so that it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def render_grid(
    sections: Sequence[tuple[str, Sequence[GridTile]]],
    class_names: Sequence[str],
    title: str,
    tile: int = 96,
    columns: int = 8,
) -> Image.Image:
    """Draw titled sections of image tiles with true/predicted label and confidence.

    Correct predictions get a green frame, mistakes a red one and a red caption.

    Args:
        sections: ``(heading, predictions)`` pairs (empty sections are skipped).
        class_names: Display names by class index.
        title: Line at the top.
        tile: Side of each image tile in pixels.
        columns: Tiles per row.

    Returns:
        The RGB grid.
    """
    font_size = max(9, tile // 9)
    font = ImageFont.load_default(size=font_size)
    head_font = ImageFont.load_default(size=max(12, tile // 6))
    pad, frame, caption = 6, 3, 2 * (font_size + 3) + 2
    cell_w, cell_h = tile + 2 * frame + pad, tile + 2 * frame + caption + pad
    heading_h = max(12, tile // 6) + 10
    shown = [(h, p) for h, p in sections if p]
    height = heading_h + pad
    for _, preds in shown:
        height += heading_h + cell_h * -(-len(preds) // columns)
    canvas = Image.new("RGB", (pad + columns * cell_w, height + pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=TEXT, font=head_font)
    y = heading_h + pad
    for heading, preds in shown:
        draw.text((pad, y + 2), heading, fill=TEXT, font=head_font)
        y += heading_h
        for n, p in enumerate(preds):
            x0 = pad + (n % columns) * cell_w
            y0 = y + (n // columns) * cell_h
            ok = p.pred == p.label
            color = CORRECT if ok else WRONG
            draw.rectangle(
                (x0, y0, x0 + tile + 2 * frame - 1, y0 + tile + 2 * frame - 1),
                fill=color,
            )
            picture = Image.fromarray(p.image).resize(
                (tile, tile), Image.Resampling.NEAREST
            )
            canvas.paste(picture, (x0 + frame, y0 + frame))
            text_y = y0 + tile + 2 * frame + 1
            width = tile + 2 * frame
            true_text = _fit(draw, f"true: {class_names[p.label]}", font, width)
            confidence = f" {confidence_text(p.confidence)}"
            room = width - int(draw.textlength(confidence, font=font))
            pred_text = _fit(draw, f"pred: {class_names[p.pred]}", font, room)
            pred_text += confidence
            draw.text((x0, text_y), true_text, fill=TEXT, font=font)
            draw.text(
                (x0, text_y + caption // 2),
                pred_text,
                fill=TEXT if ok else WRONG,
                font=font,
            )
        y += cell_h * -(-len(preds) // columns)
    return canvas
