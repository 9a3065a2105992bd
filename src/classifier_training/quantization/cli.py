"""The precision part of ``classifier-export``'s command line.

``classifier-export`` (:mod:`classifier_training.export`) adds these options to
its parser, turns them into :class:`PrecisionOptions` and, once ``model.onnx``
is in place, calls :func:`export_precisions`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from classifier_training.core.errors import UsageError
from classifier_training.core.readers import canonical_split
from classifier_training.core.run_files import (
    METRICS_FILE,
    MODEL_PRECISIONS,
    REPORT_FILE,
    precision_file,
)
from classifier_training.quantization.calibration_set import (
    DEFAULT_CALIBRATION_IMAGES,
)
from classifier_training.quantization.guard import DEFAULT_MAX_DROP
from classifier_training.quantization.pipeline import (
    REDUCED_PRECISIONS,
    GuardRefusedError,
    PrecisionInputs,
    PrecisionOptions,
    describe_export,
    export_precision,
    warn,
)
from classifier_training.quantization.schemes import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_METHOD,
    INT8_TARGETS,
)
from classifier_training.report.run import build_run_report

#: Exit status when the accuracy guard refused a file (bad input stays 2).
GUARD_REFUSED_EXIT_CODE = 1


def add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--precision`` and the options of calibration and the guard."""
    group = parser.add_argument_group("precision (int8, fp16)")
    group.add_argument(
        "--precision",
        nargs="+",
        default=["fp32"],
        metavar="P",
        help="fp32 (default), int8, fp16; several allowed",
    )
    group.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="dataset for calibration and the guard (default: the run's "
        "data.data_root)",
    )
    group.add_argument(
        "--guard-split", type=canonical_split, default="val", help="default val"
    )
    group.add_argument(
        "--max-drop",
        type=float,
        default=DEFAULT_MAX_DROP,
        help="largest top-1 drop kept, percentage points (default %(default)s)",
    )
    group.add_argument(
        "--calibration-images",
        type=int,
        default=DEFAULT_CALIBRATION_IMAGES,
        metavar="N",
        help="int8: train images to calibrate on (default %(default)s)",
    )
    group.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default=DEFAULT_CALIBRATION_METHOD,
        help="int8: minmax (observed range, default), entropy (KL divergence) "
        "or percentile (clips the rarest 0.001%%)",
    )
    group.add_argument(
        "--calibration-dir",
        type=Path,
        default=None,
        help="int8: calibrate on this folder's images instead of the train split",
    )
    group.add_argument(
        "--int8-target",
        choices=INT8_TARGETS,
        default="auto",
        help="int8: the CPU it will run on (auto: this one; x86 without VNNI "
        "gets 7-bit weights)",
    )
    group.add_argument(
        "--provider", default=None, help="onnxruntime provider of the guard"
    )


def parse_precisions(values: Sequence[str]) -> list[str]:
    """``--precision`` values, validated, duplicates dropped, fp32 first.

    Raises:
        UsageError: One line naming the first value outside the list.
    """
    wrong = [v for v in values if v not in MODEL_PRECISIONS]
    if wrong:
        raise UsageError(
            f"--precision {wrong[0]!r} is not one of {', '.join(MODEL_PRECISIONS)}"
        )
    return [p for p in MODEL_PRECISIONS if p in values]


def precision_options(args: argparse.Namespace) -> PrecisionOptions:
    """The options the arguments ask for (checked).

    Raises:
        UsageError: On an impossible value.
    """
    if args.calibration_images < 1:
        raise UsageError("--calibration-images must be >= 1")
    if not args.max_drop >= 0:
        raise UsageError(f"--max-drop must be >= 0, got {args.max_drop}")
    return PrecisionOptions(
        data_root=args.data_root,
        guard_split=args.guard_split,
        max_drop=args.max_drop,
        calibration_images=args.calibration_images,
        calibration_method=args.calibration_method,
        calibration_dir=args.calibration_dir,
        int8_target=args.int8_target,
        provider=args.provider,
    )


def remove_stale(model_path: Path, precisions: Sequence[str]) -> None:
    """Remove reduced-precision files made from the ``model.onnx`` just replaced
    (a stale ``model.int8.onnx`` would answer for other weights)."""
    for precision in REDUCED_PRECISIONS:
        stale = model_path.parent / precision_file(model_path.name, precision)
        if precision not in precisions and stale.is_file():
            stale.unlink()
            warn(f"{stale}: removed, it was made from the previous {model_path.name}")


def export_precisions(
    model_path: Path,
    precisions: Sequence[str],
    options: PrecisionOptions,
    inputs: PrecisionInputs | None,
) -> int:
    """Write each reduced precision asked for; print one line per file.

    Returns:
        0, or :data:`GUARD_REFUSED_EXIT_CODE` when the guard refused any file
        (the others are still written).
    """
    refused = 0
    for precision in precisions:
        if precision == "fp32" or inputs is None:
            continue
        try:
            written = export_precision(model_path, precision, options, inputs)
        except GuardRefusedError as error:
            print(f"error: {error}", file=sys.stderr)
            refused += 1
            continue
        print(describe_export(written))
    _refresh_run_report(model_path.parent)
    return GUARD_REFUSED_EXIT_CODE if refused else 0


def _refresh_run_report(folder: Path) -> None:
    """Rebuild the run's ``report.html`` (it shows ``export_summary.json``) when
    the model sits in a finished run folder."""
    if (folder / METRICS_FILE).is_file() and (folder / REPORT_FILE).is_file():
        print(f"updated {build_run_report(folder)}")
