"""``classifier-predict``: classify image files with a model or checkpoint.

Prints one tab-separated line per image (path, label, confidence), or JSON lines
with ``--json``. Confidences are calibrated (the run's temperature, see
``labels_mapping.json``); with ``--min-confidence P`` a prediction below ``P``
prints ``unsure`` (``--unsure-label``) instead of its label (JSON: ``"unsure":
true`` and the label kept in ``"predicted"``). Unreadable inputs are reported on
stderr, naming the file, and the other images are still predicted.

With ``--group-by KEY`` the inputs are JSONL annotation files (or folders holding
``annotations.jsonl`` files) whose rows carry ``metadata.KEY`` (e.g.
``track_id``), and it prints one line per track: track id, label, confidence and
frames used of the track's frames (``--json``: JSON lines). A track's crops are
aggregated by ``--rule`` (:mod:`classifier_training.core.tracks`); below
``--min-confidence`` a track prints the unsure label. Rows without the key are
counted on stderr and answered alone; a key that no row of a file has is an error.

Exit status: 0 when every image was predicted, 1 when some input failed (missing
file, not an image, empty folder), 2 when the model cannot be used (e.g. missing
``labels_mapping.json``) or the arguments or annotation files are wrong.
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
from classifier_training.core.groups import (
    UNGROUPED_PREFIX,
    group_coverage,
    group_of,
    require_group_key,
)
from classifier_training.core.readers import (
    ANNOTATION_FILE,
    DataError,
    Sample,
    display_name,
    iter_image_files,
    iter_jsonl_lines,
)
from classifier_training.core.tracks import (
    AGGREGATION_RULES,
    DEFAULT_RULE,
    TrackAnswer,
    answer_tracks,
    check_rule,
)
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
        "inputs",
        type=Path,
        nargs="+",
        help=(
            "image files or folders (recursive); with --group-by, JSONL annotation "
            "files or folders holding annotations.jsonl"
        ),
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
    parser.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help=(
            "answer per track: the inputs are JSONL annotation files whose rows "
            "carry metadata.KEY (a dotted path, e.g. track_id)"
        ),
    )
    parser.add_argument(
        "--rule",
        default=None,
        choices=AGGREGATION_RULES,
        help=f"how a track's crops are combined (default: {DEFAULT_RULE})",
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
        arrays, outcome = _preprocess(classifier, chunk)
        predictions = (
            classifier.predict_batch(np.stack(arrays), top_k) if arrays else []
        )
        for path, item in zip(chunk, outcome, strict=True):
            if isinstance(item, str):
                yield item
            else:
                yield dataclasses.replace(predictions[item], source=str(path))


def _preprocess(
    classifier: Classifier, files: Sequence[Path]
) -> tuple[list[npt.NDArray[Any]], list[int | str]]:
    """Preprocessed arrays, and per file its array's index or an error line."""
    arrays: list[npt.NDArray[Any]] = []
    outcome: list[int | str] = []
    for path in files:
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
    return arrays, outcome


def file_probabilities(
    classifier: Classifier, files: Sequence[Path], batch_size: int
) -> Iterator[npt.NDArray[np.float64] | str]:
    """Calibrated probabilities of files in batches, or an error line for each.

    Args:
        classifier: The model.
        files: Image files.
        batch_size: Images per network call.

    Yields:
        In input order, a ``C`` probability vector or a one-line error naming
        the file.
    """
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        arrays, outcome = _preprocess(classifier, chunk)
        probs = classifier.predict_proba(np.stack(arrays)) if arrays else None
        for item in outcome:
            if isinstance(item, str):
                yield item
            else:
                assert probs is not None
                yield np.asarray(probs[item], dtype=np.float64)


def read_crop_rows(jsonl: Path) -> list[Sample]:
    """The rows of a JSONL file of crops to predict (labels optional).

    The training annotation format (``image`` relative to the file's folder,
    ``metadata``), read here rather than by
    :func:`~classifier_training.core.readers.parse_jsonl_line` because crops to
    predict need no label (``suffix``) and may lie anywhere.

    Raises:
        DataError: Naming ``file:line`` for a malformed row.
    """
    rows: list[Sample] = []
    for line_no, text in iter_jsonl_lines(jsonl):
        where = f"{jsonl}:{line_no}"
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not valid JSON ({error.msg})") from None
        image = row.get("image") if isinstance(row, dict) else None
        if not isinstance(image, str) or not image:
            raise DataError(f"{where}: expected an object with an 'image' path")
        metadata = row.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise DataError(f"{where}: 'metadata' must be an object, got {metadata!r}")
        label = row.get("suffix")
        rows.append(
            Sample(
                image=jsonl.parent / image,
                label=label if isinstance(label, str) else "",
                source=jsonl,
                line=line_no,
                metadata=metadata,
            )
        )
    return rows


def annotation_files(inputs: Sequence[Path]) -> list[Path]:
    """The JSONL files named by ``inputs`` (folders: their ``annotations.jsonl``).

    Raises:
        UsageError: For an input that is neither, naming it.
    """
    files: list[Path] = []
    for path in inputs:
        found = (
            sorted(path.rglob(ANNOTATION_FILE))
            if path.is_dir()
            else [path]
            if path.is_file() and path.suffix.lower() == ".jsonl"
            else []
        )
        if not found:
            raise UsageError(
                f"{path}: --group-by reads JSONL annotation files (or folders "
                f"holding {ANNOTATION_FILE}); this is neither"
            )
        files.extend(found)
    return files


def format_track(track: str, answer: TrackAnswer, args: argparse.Namespace) -> str:
    """One output line per track; an abstaining track prints the unsure label."""
    name = track.removeprefix(UNGROUPED_PREFIX)
    label = args.unsure_label if answer.abstained else answer.label
    if args.json:
        record = {"track": name, **answer.to_json(), "label": label}
        if args.min_confidence > 0:
            record["unsure"] = answer.abstained
        return json.dumps(record, ensure_ascii=False)
    shown = label if answer.abstained else display_name(answer.best)
    return (
        f"{name}\t{shown}\t{answer.confidence:.4f}\t"
        f"{answer.frames_used}/{answer.frames}"
    )


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
    if args.group_by is None and args.rule is not None:
        raise UsageError("--rule combines the crops of a track: give --group-by too")
    if args.group_by is not None:
        return _predict_tracks(args)
    classifier = load_classifier(args.model, args.labels_mapping, args.provider)
    files, errors = expand_inputs(args.inputs)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    failed = len(errors)
    for item in predict_files(classifier, files, args.top_k, args.batch_size):
        if isinstance(item, str):
            print(f"error: {item}", file=sys.stderr)
            failed += 1
        else:
            print(format_prediction(item, args))
    sys.stdout.flush()
    return 1 if failed else 0


def _track_rows(files: Sequence[Path], key: str) -> list[Sample]:
    """The rows of every file; each file must carry ``key`` on some row."""
    rows: list[Sample] = []
    for jsonl in files:
        file_rows = read_crop_rows(jsonl)
        require_group_key(file_rows, key, str(jsonl))
        coverage = group_coverage(file_rows, key)
        if coverage.missing:
            print(
                f"warning: {jsonl}: {coverage.missing} of {coverage.rows} row(s) "
                f"have no metadata.{key}; each is answered as a track of its own",
                file=sys.stderr,
            )
        rows.extend(file_rows)
    return rows


def _predict_tracks(args: argparse.Namespace) -> int:
    """``--group-by``: one line per track."""
    rule = check_rule(args.rule or DEFAULT_RULE)
    rows = _track_rows(annotation_files(args.inputs), args.group_by)
    classifier = load_classifier(args.model, args.labels_mapping, args.provider)
    probs: list[npt.NDArray[np.float64]] = []
    groups: list[str] = []
    failed = 0
    images = [row.image for row in rows]
    for row, item in zip(
        rows, file_probabilities(classifier, images, args.batch_size), strict=True
    ):
        if isinstance(item, str):
            print(f"error: {row.where}: {item}", file=sys.stderr)
            failed += 1
        else:
            probs.append(item)
            groups.append(group_of(row, args.group_by))
    answered = (
        answer_tracks(
            np.stack(probs), classifier.class_names, groups, rule, args.min_confidence
        )
        if probs
        else {}
    )
    for track in dict.fromkeys(group_of(row, args.group_by) for row in rows):
        if track not in answered:
            name = track.removeprefix(UNGROUPED_PREFIX)
            print(f"error: track {name}: no readable frame", file=sys.stderr)
            failed += 1
    for track, answer in answered.items():
        print(format_track(track, answer, args))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
