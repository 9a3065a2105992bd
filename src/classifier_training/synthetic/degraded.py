"""Recipe of the ``test_degraded`` split: crops as broadcast video delivers them.

Written only with ``SynthConfig.degrade`` (``classifier-synth --degrade``). Each
image is rendered like a test image, with four differences:

* **unseen fonts and colours**: fonts from ``degrade_fonts`` that ``fonts`` does
  not list, and jersey/number/stripe/logo colours from
  :data:`~.colors.HELD_OUT_PALETTE`, which train never draws. If every
  ``degrade_fonts`` entry is also a train font (or none is installed), the
  train fonts are used with a horizontal squeeze train never applies
  (``condense_range`` times :data:`FALLBACK_CONDENSE`);
* **low resolution**: the crop is down-scaled to ``degrade_scale_range`` of its
  size (box filter) and bilinearly scaled back up;
* **more blur and sensor noise**: ``degrade_blur_radius_range`` and
  ``degrade_noise_std_range`` replace the train ranges;
* **JPEG artefacts**: saved at ``degrade_jpeg_quality_range``.

The split has its own random stream, so train/valid/test are unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from classifier_training.synthetic.config import SynthConfig, SynthError
from classifier_training.synthetic.fonts import find_fonts

__all__ = ["FALLBACK_CONDENSE", "degraded_config", "degraded_fonts"]

FALLBACK_CONDENSE = 0.7
"""Squeeze factor on ``condense_range`` when no unseen font is available."""


def degraded_fonts(config: SynthConfig) -> dict[str, str]:
    """Fonts of the degraded split: installed ``degrade_fonts`` not in ``fonts``.

    Args:
        config: Generation settings.

    Returns:
        Mapping ``stem -> path``; the train fonts if no unseen one is available.
    """
    unseen = [name for name in config.degrade_fonts if name not in config.fonts]
    if unseen:
        try:
            return find_fonts(unseen)
        except SynthError:
            pass  # none installed: fall back to the train fonts, condensed
    return find_fonts(config.fonts)


@lru_cache(maxsize=8)
def degraded_config(config: SynthConfig, unseen_fonts: bool) -> SynthConfig:
    """The rendering settings of the degraded split.

    Args:
        config: Generation settings.
        unseen_fonts: Whether :func:`degraded_fonts` found fonts train does not
            use; if not, the digits are condensed beyond the train range.

    Returns:
        ``config`` with the blur, noise and JPEG ranges of the degraded split
        (and the fallback ``condense_range``).
    """
    condense = config.condense_range
    if not unseen_fonts:
        lo, hi = condense
        condense = (max(0.3, lo * FALLBACK_CONDENSE), max(0.3, hi * FALLBACK_CONDENSE))
    return config.model_copy(
        update={
            "out_dir": Path("."),
            "blur_radius_range": config.degrade_blur_radius_range,
            "noise_std_range": config.degrade_noise_std_range,
            "jpeg_quality_range": config.degrade_jpeg_quality_range,
            "condense_range": condense,
        }
    )
