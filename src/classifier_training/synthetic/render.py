"""Render one crop: a jersey back with a number (or none), shaded, blurred, noisy.

Each image has its own random generator seeded with ``(seed, split, class,
index)``, so an image does not depend on which other images are rendered, in
which process or in which order. The draws happen in a fixed order; any change
to it alters the images and must bump ``GENERATOR_VERSION``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from classifier_training.synthetic.classes import normalise_classes
from classifier_training.synthetic.colors import (
    EDGE_COLORS,
    HELD_OUT_PALETTE,
    PALETTE,
    Color,
    Palette,
    jitter,
    outline_candidates,
    pick,
    pick_contrasting,
)
from classifier_training.synthetic.config import (
    DEGRADED_SPLIT,
    SPLITS,
    FloatRange,
    SynthConfig,
)
from classifier_training.synthetic.degraded import degraded_config, degraded_fonts
from classifier_training.synthetic.fonts import (
    REF_FONT_SIZE,
    find_fonts,
    text_extent,
    text_masks,
)
from classifier_training.synthetic.geometry import (
    Pose,
    bounding_box,
    fit_scale,
    number_matrix,
    perspective_coeffs,
    place_in_box,
)
from classifier_training.synthetic.texture import (
    STRIPE_STYLES,
    brightness_field,
    draw_logo,
    draw_stripes,
)
from classifier_training.synthetic.tracks import (
    draw_occluder,
    motion_blur,
    track_config,
)

__all__ = [
    "Metadata",
    "fonts_for_split",
    "render_crop",
    "render_sample",
    "render_track_frame",
    "track_length",
]

Metadata = dict[str, str | bool | int]
"""Per-image description stored in ``annotations.jsonl`` (colour names, font...)."""

_SPLIT_IDS: dict[str, int] = {
    name: i for i, name in enumerate((*SPLITS, DEGRADED_SPLIT))
}


# Seeds of track generators carry this word, so they never meet a crop's seed.
_TRACK_STREAM = 0x7472616B
_KIT, _FRAME, _LENGTH = 1, 2, 3


def _class_key(label: str) -> int:
    return 0 if label == "" else int(label) + 1


def _image_rng(seed: int, split: str, label: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_IDS[split], _class_key(label), index])


def _track_rng(
    seed: int, split: str, label: str, track: int, *stream: int
) -> np.random.Generator:
    key = [seed, _SPLIT_IDS[split], _class_key(label), track, _TRACK_STREAM]
    return np.random.default_rng([*key, *stream])


def track_length(cfg: SynthConfig, split: str, label: str, track: int) -> int:
    """Frames of track ``track`` of class ``label`` in ``split``.

    Args:
        cfg: Generation settings (``seed``, ``track_frames_range``).
        split: One of :data:`SPLITS`.
        label: The track's class.
        track: Track index within its class and split.

    Returns:
        A number of frames within ``track_frames_range``.
    """
    lo, hi = cfg.track_frames_range
    return int(_track_rng(cfg.seed, split, label, track, _LENGTH).integers(lo, hi + 1))


def _stripe_color(
    rng: np.random.Generator,
    cfg: SynthConfig,
    style: str,
    jersey: Color,
    avoid: tuple[str, str],
    palette: Palette,
) -> Color:
    """Stripe colour: a tint of the jersey for pinstripes, else a third colour."""
    names = list(palette)
    if style == "pinstripe":
        other = np.array(palette[pick(rng, names)], dtype=np.float64)
        mix = rng.uniform(0.15, 0.3)
        blend = (1 - mix) * np.array(jersey, dtype=np.float64) + mix * other
        r, g, b = (int(np.rint(v)) for v in blend)
        return (r, g, b)
    stripe_name = pick(rng, [n for n in names if n not in avoid])
    return jitter(rng, palette[stripe_name], cfg.color_jitter)


def _jersey(
    rng: np.random.Generator,
    cfg: SynthConfig,
    size: tuple[int, int],
    palette: Palette,
    kit: np.random.Generator | None = None,
) -> tuple[Image.Image, list[float], Metadata, str]:
    """Jersey colour, stripes and an optional background band at one side.

    Args:
        rng: The image's generator (the background band).
        cfg: Generation settings.
        size: Supersampled ``(width, height)``.
        palette: The colours to draw from.
        kit: The generator of the kit (colours, stripes); ``rng`` when ``None``.
            A track replays one kit generator for each of its frames.

    Returns:
        The supersampled image, the free box for the number, the metadata so far
        and the palette name chosen for the number.
    """
    kit = rng if kit is None else kit
    w, h = size
    jersey_name = pick(kit, list(palette))
    jersey = jitter(kit, palette[jersey_name], cfg.color_jitter)
    number_name = pick_contrasting(kit, jersey_name, cfg.min_contrast, palette=palette)
    img = Image.new("RGB", (w, h), jersey)
    draw = ImageDraw.Draw(img)

    stripes = "none"
    if kit.random() < cfg.stripe_prob:
        stripes = pick(kit, STRIPE_STYLES)
        avoid = (jersey_name, number_name)
        color = _stripe_color(kit, cfg, stripes, jersey, avoid, palette)
        draw_stripes(draw, kit, stripes, color, (w, h))

    # Free area for the number; a background band may occupy one side.
    margin = cfg.margin_frac * min(w, h) + cfg.supersample
    box = [margin, margin, w - margin, h - margin]
    edge = "none"
    if rng.random() < cfg.edge_prob:
        edge = "left" if rng.random() < 0.5 else "right"
        band = rng.uniform(*cfg.edge_width_range) * w
        edge_color = jitter(rng, pick(rng, EDGE_COLORS), cfg.color_jitter)
        if edge == "left":
            draw.rectangle((0, 0, band, h), fill=edge_color)
            box[0] += band
        else:
            draw.rectangle((w - band, 0, w, h), fill=edge_color)
            box[2] -= band

    meta: Metadata = {
        "font": "none",
        "jersey_color": jersey_name,
        "number_color": "none",
        "outline": False,
        "outline_color": "none",
        "stripes": stripes,
        "edge": edge,
        "logo": False,
    }
    return img, box, meta, number_name


def _draw_number(
    img: Image.Image,
    rng: np.random.Generator,
    cfg: SynthConfig,
    fonts: Mapping[str, str],
    label: str,
    colors: tuple[str, str],
    box: Sequence[float],
    palette: Palette,
    kit: np.random.Generator | None = None,
) -> tuple[Metadata, tuple[float, float, float, float]]:
    """Draw ``label`` onto ``img`` fully inside ``box`` (x0, y0, x1, y1).

    ``colors`` is ``(jersey, number)`` by palette name. The font, outline and
    colours come from ``kit`` (``rng`` when ``None``), the pose and placement
    from ``rng``.

    Returns:
        The metadata of the number (font and colours) and its bounding box.
    """
    kit = rng if kit is None else kit
    jersey_name, number_name = colors
    w, h = img.size
    font_name = pick(kit, list(fonts))
    path = fonts[font_name]
    outline = bool(kit.random() < cfg.outline_prob)
    if outline:
        stroke_frac = kit.uniform(*cfg.outline_width_range)
        outline_name = pick(kit, outline_candidates(number_name, jersey_name, palette))
    else:
        is_bold = "Bol" in font_name
        stroke_frac = 0.0 if is_bold else cfg.faux_bold_width
        outline_name = number_name
    number_color = jitter(kit, palette[number_name], cfg.color_jitter)
    outline_color = (
        jitter(kit, palette[outline_name], cfg.color_jitter)
        if outline
        else number_color
    )
    pose = Pose(
        condense=rng.uniform(*cfg.condense_range),
        angle_rad=math.radians(
            rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
        ),
        tilt_x=rng.uniform(-cfg.perspective, cfg.perspective),
        tilt_y=rng.uniform(-cfg.perspective, cfg.perspective) * 0.5,
    )
    target_h = rng.uniform(*cfg.digit_height_range) * h
    # Size from the reference-size extent, shrunk until the posed number fits.
    ref_w, ref_h = text_extent(path, label, round(REF_FONT_SIZE * stroke_frac))
    scale = target_h / ref_h
    fit = fit_scale(
        number_matrix(pose, ref_w * scale, target_h), ref_w * scale, target_h, box
    )
    size = max(6, int(REF_FONT_SIZE * scale * min(1.0, fit)))
    stroke = round(size * stroke_frac)
    if outline:
        stroke = max(stroke, 1)
    full, inner = text_masks(path, label, size, stroke, outline)
    tw, th = full.size
    m = place_in_box(rng, number_matrix(pose, tw, th), tw, th, box)
    coeffs = perspective_coeffs(m)
    warp = Image.Transform.PERSPECTIVE
    bicubic = Image.Resampling.BICUBIC
    full_mask = full.transform((w, h), warp, coeffs, bicubic)
    img.paste(outline_color, (0, 0, w, h), full_mask)
    if inner is not None:
        img.paste(
            number_color, (0, 0, w, h), inner.transform((w, h), warp, coeffs, bicubic)
        )
    meta: Metadata = {
        "font": font_name,
        "number_color": number_name,
        "outline": outline,
        "outline_color": outline_name if outline else "none",
    }
    return meta, bounding_box(m, tw, th)


def _finish(
    rng: np.random.Generator,
    cfg: SynthConfig,
    img: Image.Image,
    low_res: FloatRange | None,
    motion: tuple[float, FloatRange] | None = None,
) -> tuple[Image.Image, int]:
    """Downsample, blur, shade, add noise and draw the JPEG quality.

    With ``low_res`` the crop first passes through a smaller size: down-scaled
    by a factor drawn from that range, then scaled back up. ``motion`` is the
    probability and length range (pixels at 64 px) of a motion blur after the
    blur.
    """
    out_w, out_h = img.width // cfg.supersample, img.height // cfg.supersample
    if low_res is not None:
        factor = rng.uniform(*low_res)
        small = (max(2, round(out_w * factor)), max(2, round(out_h * factor)))
        img = img.resize(small, Image.Resampling.BOX)
        img = img.resize((out_w, out_h), Image.Resampling.BILINEAR)
    elif cfg.supersample > 1:
        img = img.reduce(cfg.supersample)
    radius = rng.uniform(*cfg.blur_radius_range) * out_h / 64.0
    if radius > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    if motion is not None and rng.random() < motion[0]:
        length = rng.uniform(*motion[1]) * out_h / 64.0
        img = motion_blur(img, length, rng.uniform(0.0, math.pi))
    # Fabric shading (smooth, so applying it after blurring is equivalent) + noise.
    shade = brightness_field(rng, cfg, out_w, out_h)
    arr = np.asarray(img, dtype=np.float32) * shade[:, :, None]
    noise_std = rng.uniform(*cfg.noise_std_range)
    arr += np.float32(noise_std) * rng.standard_normal(arr.shape, dtype=np.float32)
    arr += 0.5
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    quality = int(
        rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1)
    )
    return img, quality


def render_crop(
    cfg: SynthConfig, fonts: Mapping[str, str], split: str, label: str, index: int
) -> tuple[Image.Image, int, Metadata]:
    """Render one crop, deterministically from ``(cfg.seed, split, label, index)``.

    Args:
        cfg: Generation settings.
        fonts: Mapping ``stem -> font path``: :func:`fonts_for_split`.
        split: One of :data:`SPLITS` or :data:`DEGRADED_SPLIT`.
        label: Class label, ``"0"`` .. ``"99"`` or ``""``.
        index: Image index within its class and split.

    Returns:
        The final RGB image, the JPEG quality to save it with, and its metadata.
    """
    rng = _image_rng(cfg.seed, split, label, index)
    palette: Palette = PALETTE
    low_res: FloatRange | None = None
    if split == DEGRADED_SPLIT:
        palette, low_res = HELD_OUT_PALETTE, cfg.degrade_scale_range
        cfg = degraded_config(cfg, unseen_fonts=not set(fonts) <= set(cfg.fonts))
    ss = cfg.supersample
    out_h = cfg.image_size
    out_w = max(8, round(out_h * rng.uniform(*cfg.aspect_range)))
    w, h = out_w * ss, out_h * ss
    img, box, meta, number_name = _jersey(rng, cfg, (w, h), palette)
    jersey_name = str(meta["jersey_color"])
    if label:
        colors = (jersey_name, number_name)
        number, _ = _draw_number(img, rng, cfg, fonts, label, colors, box, palette)
        meta.update(number)
    elif rng.random() < cfg.logo_prob:
        logo_name = pick_contrasting(rng, jersey_name, 1.5, palette=palette)
        logo_color = jitter(rng, palette[logo_name], cfg.color_jitter)
        draw_logo(ImageDraw.Draw(img), rng, cfg, logo_color, (w, h))
        meta["logo"] = True
    img, quality = _finish(rng, cfg, img, low_res)
    return img, quality, meta


def render_track_frame(
    cfg: SynthConfig,
    fonts: Mapping[str, str],
    split: str,
    label: str,
    track: int,
    frame: int,
) -> tuple[Image.Image, int, str, Metadata]:
    """Render frame ``frame`` of a player track (recipe: :mod:`.tracks`).

    Deterministic from ``(cfg.seed, split, label, track, frame)``: the kit from
    the track's generator (replayed here), everything else from the frame's.

    Args:
        cfg: Generation settings (with ``tracks`` on).
        fonts: Mapping ``stem -> font path``: :func:`fonts_for_split`.
        split: One of :data:`SPLITS`.
        label: The track's class: the player's number, or ``""`` for none.
        track: Track index within its class and split.
        frame: Frame index within the track.

    Returns:
        The RGB image, its JPEG quality, the frame's label (``""`` when the
        number is not shown) and its metadata.
    """
    kit = _track_rng(cfg.seed, split, label, track, _KIT)
    rng = _track_rng(cfg.seed, split, label, track, _FRAME, frame)
    tcfg = track_config(cfg)
    ss = tcfg.supersample
    out_h = tcfg.image_size
    out_w = max(8, round(out_h * rng.uniform(*tcfg.aspect_range)))
    w, h = out_w * ss, out_h * ss
    img, box, meta, number_name = _jersey(rng, tcfg, (w, h), PALETTE, kit=kit)
    shown = bool(label) and rng.random() >= tcfg.track_illegible_prob
    meta["occluder"] = "none"
    if shown:
        colors = (str(meta["jersey_color"]), number_name)
        number, number_box = _draw_number(
            img, rng, tcfg, fonts, label, colors, box, PALETTE, kit=kit
        )
        meta.update(number)
        if rng.random() < tcfg.track_occlusion_prob:
            meta["occluder"] = draw_occluder(
                ImageDraw.Draw(img), rng, tcfg, number_box, (w, h)
            )
    elif kit.random() < tcfg.logo_prob:  # the front of the kit: its logo
        logo_name = pick_contrasting(kit, str(meta["jersey_color"]), 1.5)
        logo_color = jitter(kit, PALETTE[logo_name], tcfg.color_jitter)
        draw_logo(ImageDraw.Draw(img), kit, tcfg, logo_color, (w, h))
        meta["logo"] = True
    motion = (tcfg.track_motion_blur_prob, tcfg.track_motion_blur_range)
    img, quality = _finish(rng, tcfg, img, tcfg.track_scale_range, motion)
    return img, quality, label if shown else "", meta


def fonts_for_split(config: SynthConfig, split: str) -> dict[str, str]:
    """The fonts a split is drawn with (held-out ones for the degraded split).

    Args:
        config: Generation settings.
        split: One of :data:`SPLITS` or :data:`DEGRADED_SPLIT`.

    Returns:
        Mapping ``stem -> font path``.
    """
    if split == DEGRADED_SPLIT:
        return degraded_fonts(config)
    return find_fonts(config.fonts)


def render_sample(
    config: SynthConfig, label: str, *, split: str = "train", index: int = 0
) -> tuple[Image.Image, Metadata]:
    """Render a single sample in memory (before JPEG encoding).

    Useful for previews and contact sheets; :func:`generate_dataset` writes the
    same image (JPEG-compressed) to ``<split>/images/<stem>_<index>.jpg``.

    Args:
        config: Generation settings (``out_dir`` is ignored).
        label: Class label, ``"0"`` .. ``"99"`` or ``""``.
        split: One of :data:`SPLITS` or :data:`DEGRADED_SPLIT` (rendered even
            when ``config.degrade`` is off).
        index: Image index within its class and split.

    Returns:
        The RGB image and its metadata.

    Raises:
        ValueError: If ``label`` or ``split`` is invalid.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {tuple(_SPLIT_IDS)}, got {split!r}")
    normalise_classes([label])
    fonts = fonts_for_split(config, split)
    image, _, meta = render_crop(config, fonts, split, label, index)
    return image, meta
