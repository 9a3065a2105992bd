"""Recipe of the track datasets (``SynthConfig.tracks``, ``classifier-synth --tracks``).

A track is one player seen over several consecutive frames, as a tracker hands
them to a jersey-number reader. What a track keeps and what each frame redraws:

* **per track**: the number (the class), the kit (jersey, stripes, number and
  outline colours, font) and the number of frames (``track_frames_range``);
* **per frame**: crop aspect, pose (squeeze, rotation, tilt), size and position
  of the number, a background band, the player's distance (the frame passes
  through ``track_scale_range`` of its size), blur, motion blur, fabric
  shading, sensor noise, JPEG quality, and an occluder (an arm or another
  player) over part of the number. With ``track_illegible_prob`` the player
  faces away: the frame shows the front of the kit and is labelled ``""``.

Tracks of the empty class (when ``""`` is among the classes) are players without
a number: every frame is labelled ``""``. Each split has its own tracks (split by
track), and every row carries ``metadata.track_id`` and ``metadata.frame``.

The kit is drawn from a generator seeded per track and replayed for each frame,
so every frame draws the same kit; the frame's own generator draws the rest.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from classifier_training.synthetic.classes import label_to_stem
from classifier_training.synthetic.colors import (
    EDGE_COLORS,
    PALETTE,
    jitter,
    pick,
)
from classifier_training.synthetic.config import SynthConfig

__all__ = [
    "OCCLUDERS",
    "TRACK_KEY",
    "draw_occluder",
    "frame_file_name",
    "motion_blur",
    "track_config",
    "track_id",
]

TRACK_KEY = "track_id"
"""The metadata field naming a row's track (``data.group_key=track_id``)."""

OCCLUDERS: tuple[str, ...] = ("arm", "player")
_SKIN = EDGE_COLORS[2:4]


@lru_cache(maxsize=8)
def track_config(config: SynthConfig) -> SynthConfig:
    """The rendering settings of track frames: the ``track_*`` blur, noise and
    JPEG ranges in place of the crops' ones."""
    return config.model_copy(
        update={
            "out_dir": Path("."),
            "blur_radius_range": config.track_blur_radius_range,
            "noise_std_range": config.track_noise_std_range,
            "jpeg_quality_range": config.track_jpeg_quality_range,
        }
    )


def track_id(split: str, label: str, index: int) -> str:
    """The id of track ``index`` of class ``label`` in ``split`` (``test-23-0004``).

    Ids are unique across splits, so a group key never joins two splits.
    """
    return f"{split}-{label_to_stem(label)}-{index:04d}"


def frame_file_name(track: str, frame: int) -> str:
    """The image file of ``frame`` of ``track``."""
    return f"{track}_{frame:03d}.jpg"


def motion_blur(image: Image.Image, length: float, angle: float) -> Image.Image:
    """Blur ``image`` along a line of ``length`` pixels at ``angle`` radians.

    PIL's kernels stop at 5 x 5, so the line kernel is built here: sample points
    along the segment, each spread over its four nearest pixels.

    Args:
        image: An RGB image.
        length: Length of the blur in pixels (below 1: unchanged).
        angle: Direction of the motion.

    Returns:
        The blurred image.
    """
    if length < 1.0:
        return image
    half = math.ceil(length / 2) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float64)
    for t in np.linspace(-length / 2, length / 2, max(2, int(4 * length))):
        x, y = half + t * math.cos(angle), half + t * math.sin(angle)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    kernel /= kernel.sum()
    pixels = np.asarray(image, dtype=np.float64)
    blurred = np.stack(
        [
            ndimage.convolve(pixels[:, :, c], kernel, mode="nearest")
            for c in range(pixels.shape[2])
        ],
        axis=2,
    )
    return Image.fromarray(np.clip(np.rint(blurred), 0, 255).astype(np.uint8), "RGB")


def draw_occluder(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cfg: SynthConfig,
    number_box: tuple[float, float, float, float],
    size: tuple[int, int],
) -> str:
    """Cover part of the number: an arm across it, or another player at one side.

    Args:
        draw: Drawing context of the (supersampled) crop.
        rng: The frame's generator.
        cfg: Supplies ``track_occlusion_range`` and ``color_jitter``.
        number_box: ``(x0, y0, x1, y1)`` of the number.
        size: ``(width, height)`` of the crop.

    Returns:
        The occluder drawn, one of :data:`OCCLUDERS`.
    """
    w, h = size
    x0, _, x1, _ = number_box
    cover = rng.uniform(*cfg.track_occlusion_range) * (x1 - x0)
    kind = pick(rng, OCCLUDERS)
    if kind == "arm":
        color = jitter(rng, pick(rng, _SKIN), cfg.color_jitter)
        centre = rng.uniform(x0 + cover / 2, max(x0 + cover / 2, x1 - cover / 2))
        slant = rng.uniform(-0.25, 0.25) * h
        top, bottom = centre - slant, centre + slant
        draw.polygon(
            [
                (top - cover / 2, 0),
                (top + cover / 2, 0),
                (bottom + cover / 2, h),
                (bottom - cover / 2, h),
            ],
            fill=color,
        )
    else:
        color = jitter(rng, PALETTE[pick(rng, list(PALETTE))], cfg.color_jitter)
        if rng.random() < 0.5:
            draw.rectangle((0, 0, x0 + cover, h), fill=color)
        else:
            draw.rectangle((x1 - cover, 0, w, h), fill=color)
    return kind
