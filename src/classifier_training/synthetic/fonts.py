"""Fonts bundled with matplotlib, and the text masks drawn with them.

Using matplotlib's DejaVu/STIX fonts means no system fonts or downloads are
needed, and every machine with the same matplotlib renders the same glyphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from classifier_training.synthetic.config import DEFAULT_FONTS, SynthError

__all__ = ["REF_FONT_SIZE", "find_fonts", "text_extent", "text_masks"]

REF_FONT_SIZE = 200
"""Font size at which a number's extent is measured before it is scaled."""


def find_fonts(names: Sequence[str] = DEFAULT_FONTS) -> dict[str, str]:
    """Locate font files bundled with matplotlib.

    Args:
        names: Font file stems, e.g. ``"DejaVuSans-Bold"``.

    Returns:
        Mapping ``stem -> path`` (in the order of ``names``) of the fonts found.

    Raises:
        SynthError: If none of the fonts exists.
    """
    import matplotlib  # deferred: only needed to find the font directory

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = {
        name: str(font_dir / f"{name}.ttf")
        for name in names
        if (font_dir / f"{name}.ttf").is_file()
    }
    if not found:
        raise SynthError(f"none of the fonts {list(names)} found in {font_dir}")
    return found


@lru_cache(maxsize=2048)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@lru_cache(maxsize=4096)
def text_extent(path: str, text: str, stroke: int) -> tuple[int, int]:
    """Width and height of ``text`` at :data:`REF_FONT_SIZE`.

    Args:
        path: Font file.
        text: The text.
        stroke: Stroke width in pixels at the reference size.

    Returns:
        ``(width, height)`` of the ink bounding box.
    """
    left, top, right, bottom = _font(path, REF_FONT_SIZE).getbbox(
        text, stroke_width=stroke
    )
    return int(right - left), int(bottom - top)


def text_masks(
    path: str, text: str, size: int, stroke: int, outline: bool
) -> tuple[Image.Image, Image.Image | None]:
    """Render ``text`` into tight masks: the full glyphs and (if outlined) the fill.

    Args:
        path: Font file.
        text: The text.
        size: Font size in pixels.
        stroke: Stroke width in pixels.
        outline: Whether the stroke is an outline in another colour; if so the
            fill alone is returned as a second mask.

    Returns:
        ``(full, inner)``: ``"L"`` masks cropped to the ink, ``inner`` is None
        without an outline.
    """
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = 2
    canvas = (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad)
    origin = (pad - left, pad - top)
    full = Image.new("L", canvas, 0)
    ImageDraw.Draw(full).text(
        origin, text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    crop = full.getbbox() or (0, 0, canvas[0], canvas[1])
    inner: Image.Image | None = None
    if outline:
        inner = Image.new("L", canvas, 0)
        ImageDraw.Draw(inner).text(
            origin, text, font=font, fill=255, stroke_width=stroke, stroke_fill=0
        )
        inner = inner.crop(crop)
    return full.crop(crop), inner
