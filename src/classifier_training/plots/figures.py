"""Saving figures and images atomically (a killed run never leaves half a file)."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

from classifier_training.core.io import atomic_path

# One look for every figure: small and light so that per-epoch plots stay cheap.
DPI = 100


def save_figure(figure: Figure, path: Path, dpi: int = DPI) -> Path:
    """Save ``figure`` as PNG atomically.

    Args:
        figure: The figure (created with ``matplotlib.figure.Figure``; no pyplot,
            so nothing global is touched and no GUI backend is needed).
        path: The destination ``.png``.
        dpi: Resolution.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path


def figure_png(figure: Figure, dpi: int = DPI) -> bytes:
    """``figure`` as PNG bytes (pages that embed a plot without writing a file).

    Args:
        figure: The figure.
        dpi: Resolution.

    Returns:
        The PNG data.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_image(image: Image.Image, path: Path) -> Path:
    """Save a PIL image as PNG atomically.

    Args:
        image: The image.
        path: The destination ``.png``.

    Returns:
        ``path``.
    """
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
