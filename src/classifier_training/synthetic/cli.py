"""Command-line interface of the synthetic dataset generator.

Installed as ``classifier-synth``; also ``python -m classifier_training.synthetic``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from classifier_training.core.errors import USER_ERROR_EXIT_CODE
from classifier_training.synthetic.classes import parse_class_spec
from classifier_training.synthetic.config import (
    SynthConfig,
    SynthError,
    default_workers,
    synth_config,
)
from classifier_training.synthetic.writer import generate_dataset

_DESCRIPTION = """\
Render a synthetic jersey-number classification dataset: crops of the back of a
jersey showing a number 0-99, or no number (the empty label ""). Jersey and
number colours (with guaranteed contrast), fonts, outline, size, position,
rotation, perspective, fabric shading, blur, noise and JPEG quality vary per
image. Output is deterministic: the same arguments give byte-identical files
for any --workers.

Layout: OUT/{train,valid,test}/images/*.jpg plus OUT/<split>/annotations.jsonl
with lines {"image", "prefix": "jersey number", "suffix": <label>, "metadata"}.
With --degrade, OUT/test_degraded/ (same layout and classes as test/) holds
crops rendered like broadcast video: low resolution, strong blur, sensor noise,
low JPEG quality, and fonts and colours the other splits never use; the other
splits stay byte-identical to a run without it.
With --tracks, each split holds player tracks instead of independent crops: one
player (number, kit colours, font) over several frames (--frames), each frame
with its own pose, scale, blur, motion blur, noise, JPEG quality and occlusion,
some with the number turned away (labelled ""); rows carry metadata.track_id
(train with data.group_key=track_id) and metadata.frame; --per-class counts
tracks; tracks never cross splits.
OUT/synth_config.json records the configuration; OUT/.complete is written last.
Re-running with the same arguments on a complete dataset is a no-op."""

_CLASSES_HELP = """\
classes to render (default: all = 0-99 plus empty). Comma-separated tokens:
a number '7', an inclusive range '0-20', 'empty' for the empty label (no number)
or 'all'. An empty token, e.g. a leading/trailing comma as in '0-9,', also adds
the empty label. Examples: '0-20', '7,10,23', '0-9,empty'."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _int_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        bounds = (int(low), int(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count or a range LO-HI, got {text!r}"
        ) from None
    return bounds


def _class_spec(text: str) -> tuple[str, ...]:
    try:
        return parse_class_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for ``classifier-synth``.

    Every default is read from :class:`SynthConfig`, the one place it is set.

    Returns:
        The configured parser.
    """
    defaults = SynthConfig(out_dir=Path("."))
    aspect_lo, aspect_hi = defaults.aspect_range
    parser = argparse.ArgumentParser(
        prog="classifier-synth",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output directory"
    )
    parser.add_argument(
        "--per-class",
        type=_positive_int,
        default=defaults.per_class,
        metavar="N",
        help=(
            "training images per class (default: %(default)s); valid and test get "
            f"max({defaults.min_eval_per_class}, "
            f"round({defaults.eval_fraction} * N)) each"
        ),
    )
    parser.add_argument(
        "--seed",
        type=_non_negative_int,
        default=defaults.seed,
        metavar="S",
        help="master random seed (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=_positive_int,
        default=defaults.image_size,
        metavar="PX",
        help=(
            f"crop height in pixels; width varies between {aspect_lo} and "
            f"{aspect_hi} times it (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--classes",
        type=_class_spec,
        default=defaults.classes,
        metavar="SPEC",
        help=_CLASSES_HELP,
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=defaults.workers,
        metavar="K",
        help=(
            "worker processes (default: min(2, CPU count) = "
            f"{default_workers()}); does not change the output"
        ),
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=defaults.overwrite,
        help=(
            "replace an incomplete or differently-configured dataset in DIR "
            "(only files this tool writes are removed)"
        ),
    )
    parser.add_argument(
        "--degrade",
        action="store_true",
        default=defaults.degrade,
        help=(
            "also write a harder test split, test_degraded/, rendered like "
            "broadcast crops (low resolution, blur, noise, JPEG quality "
            f"{defaults.degrade_jpeg_quality_range[0]}-"
            f"{defaults.degrade_jpeg_quality_range[1]}, unseen fonts and colours)"
        ),
    )
    parser.add_argument(
        "--tracks",
        action="store_true",
        default=defaults.tracks,
        help=(
            "write player tracks (several frames of one player, split by track) "
            "instead of independent crops; --per-class counts tracks"
        ),
    )
    frames_lo, frames_hi = defaults.track_frames_range
    parser.add_argument(
        "--frames",
        dest="track_frames_range",
        type=_int_range,
        default=defaults.track_frames_range,
        metavar="LO-HI",
        help=f"frames per track with --tracks (default: {frames_lo}-{frames_hi})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-synth``.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        Process exit status: 0 on success, ``USER_ERROR_EXIT_CODE`` (2, like every
        command of the project and argparse) if the dataset could not be written.
    """
    args = build_parser().parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, flush=True)

    try:
        config = synth_config(
            out_dir=args.out,
            per_class=args.per_class,
            seed=args.seed,
            image_size=args.image_size,
            classes=args.classes,
            workers=args.workers,
            overwrite=args.overwrite,
            degrade=args.degrade,
            tracks=args.tracks,
            track_frames_range=args.track_frames_range,
        )
        generate_dataset(config, log=log)
    except (SynthError, ValueError, OSError) as exc:
        print(f"classifier-synth: error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    return 0
