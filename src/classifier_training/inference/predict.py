"""``classifier-predict``: classify image files with a model or checkpoint.

Prints one tab-separated line per image (path, label, confidence), or JSON lines
with ``--json``. Confidences are calibrated (the run's temperature, see
``labels_mapping.json``); with ``--min-confidence P`` a prediction below ``P``
prints ``unsure`` (``--unsure-label``) instead of its label (JSON: ``"unsure":
true`` and the label kept in ``"predicted"``). Unreadable inputs are reported on
stderr, naming the file, and the other images are still predicted.

Exit status: 0 when every image was predicted, 1 when some input failed (missing
file, not an image, empty folder), 2 when the model cannot be used (e.g. missing
``labels_mapping.json``) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import UnidentifiedImageError

from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.readers import iter_image_files
from classifier_training.inference import load_classifier
from classifier_training.inference.base import Classifier
from classifier_training.inference.results import Prediction


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-predict",
        description="Classify images with a model.onnx or a Lightning checkpoint.",
        epilog="Exit status: 0 all predicted, 1 some input failed, 2 unusable model.",
    )
    parser.add_argument("model", type=Path, help="model.onnx or checkpoint (.ckpt)")
    parser.add_argument(
        "inputs", type=Path, nargs="+", help="image files or folders (recursive)"
    )
    parser.add_argument("--top-k", type=int, default=5, help="classes per image")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--batch-size", type=int, default=32, help="images per call")
    parser.add_argument(
        "--labels-mapping", type=Path, default=None, help="labels_mapping.json path"
    )
    parser.add_argument(
        "--provider", default=None, help="onnxruntime provider: cpu, cuda, ..."
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="P",
        help="below this calibrated confidence, print the unsure label instead",
    )
    parser.add_argument(
        "--unsure-label",
        default="unsure",
        help="what to print below --min-confidence (default: unsure)",
    )
    return parser


def expand_inputs(inputs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Turn files and folders into a list of image files.

    Args:
        inputs: Paths given on the command line.

    Returns:
        The image files (folders expanded recursively, sorted) and error
        messages for inputs that do not exist or hold no images.
    """
    files: list[Path] = []
    errors: list[str] = []
    for path in inputs:
        if path.is_dir():
            found = iter_image_files(path)
            if not found:
                errors.append(f"{path}: folder holds no image files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: file not found")
    return files, errors


def predict_files(
    classifier: Classifier, files: Sequence[Path], top_k: int, batch_size: int
) -> Iterator[Prediction | str]:
    """Predict files in batches; yield a prediction or an error message for each.

    Args:
        classifier: The model.
        files: Image files.
        top_k: Classes per image.
        batch_size: Images per network call.

    Yields:
        In input order, a :class:`Prediction` or a one-line error naming the file.
    """
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays: list[npt.NDArray[Any]] = []
        outcome: list[int | str] = []
        for path in chunk:
            try:
                arrays.append(classifier.preprocessor(path))
                outcome.append(len(arrays) - 1)
            except (OSError, UnidentifiedImageError, ValueError) as error:
                reason = (
                    "not a readable image"
                    if isinstance(error, UnidentifiedImageError)
                    else str(error)
                )
                outcome.append(f"{path}: {reason}")
        predictions = (
            classifier.predict_batch(np.stack(arrays), top_k) if arrays else []
        )
        for path, item in zip(chunk, outcome, strict=True):
            if isinstance(item, str):
                yield item
            else:
                yield dataclasses.replace(predictions[item], source=str(path))


def format_prediction(item: Prediction, args: argparse.Namespace) -> str:
    """One output line; below ``--min-confidence`` the label is the unsure label."""
    unsure = item.confidence < args.min_confidence
    if args.json:
        record = item.to_dict()
        if args.min_confidence > 0:
            record["unsure"] = unsure
            if unsure:
                record["predicted"] = record["label"]
                record["label"] = args.unsure_label
        return json.dumps(record, ensure_ascii=False)
    label = args.unsure_label if unsure else item.display_label
    return f"{item.source}\t{label}\t{item.confidence:.4f}"


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-predict``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _predict(args))


def _predict(args: argparse.Namespace) -> int:
    if args.top_k < 1 or args.batch_size < 1:
        raise UsageError("--top-k and --batch-size must be >= 1")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise UsageError(
            f"--min-confidence must lie in [0, 1], got {args.min_confidence}"
        )
    classifier = load_classifier(args.model, args.labels_mapping, args.provider)
    files, errors = expand_inputs(args.inputs)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    failed = len(errors)
    highest = None
    for item in predict_files(classifier, files, args.top_k, args.batch_size):
        if isinstance(item, str):
            print(f"error: {item}", file=sys.stderr)
            failed += 1
        else:
            print(format_prediction(item, args))
            highest = max(item.confidence, highest or 0.0)
    sys.stdout.flush()
    if highest is not None and highest < args.min_confidence:
        print(
            f"warning: --min-confidence {args.min_confidence:g} is above every "
            f"confidence the model gave (highest {highest:.4f}), so every answer is "
            f"{args.unsure_label!r}; is its calibration degenerate? (temperature "
            f"{classifier.contract.temperature:g} in its contract; see the run's "
            "metrics.json, calibration)",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
