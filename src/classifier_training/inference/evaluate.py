"""``classifier-evaluate``: measure a model on a labelled split and explain errors.

Works on both dataset layouts. Class names come from the model's
``labels_mapping.json``; rows whose label the model does not know are excluded
and counted. Writes to ``--out``:

* ``summary.json``: top-1, top-5, per-class precision/recall/F1/support, macro
  averages, excluded rows, the most-confused class pairs and the most confident
  mistakes;
* ``confusion_matrix.png``: counts and row-normalised (rows: true class,
  columns: predicted), drawn like the training run's;
* ``mistakes.png``: the most confident mistakes, drawn like the training run's
  sample grid;
* ``report.html``: all of it on one self-contained page.

Confidences are the model's calibrated ones (its ``temperature``); the summary
records the expected calibration error with and without it and a risk-coverage
table: accuracy and share of rows answered when predictions under a confidence
threshold are refused (``classifier-predict --min-confidence``).

With ``--group-by KEY`` (JSONL rows whose ``metadata`` carries a track id) the
split is also scored per track (:mod:`classifier_training.inference.tracks`): a
``tracks`` section in ``summary.json``, ``worst_tracks.png`` and a "Tracks"
section in ``report.html``.

``--logit-adjust TAU`` subtracts ``TAU * log(prior)`` (the train split's class
shares, recorded in the model's contract) from the logits: post-hoc logit
adjustment of a model trained with plain cross-entropy (Menon et al., ICLR
2021). The temperature is then fitted again, on the adjusted logits of the
data root's validation split (of the evaluated split when it has none), and the
adjusted contract is written to ``--out`` as ``labels_mapping.json``, for
``classifier-predict --labels-mapping``. The summary's ``logit_adjustment`` says
which adjustment is active.

Exit status: 0 on success, 2 on unusable model, data or arguments.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console

from classifier_training.core.calibration import fit_temperature, softmax
from classifier_training.core.contract import run_folder, write_labels_mapping
from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.groups import GroupCoverage
from classifier_training.core.io import atomic_write_json
from classifier_training.core.long_tail import top1_rare
from classifier_training.core.readers import (
    SPLIT_ALIASES,
    DataError,
    Sample,
    canonical_split,
    detect_layout,
    find_splits,
    read_split,
)
from classifier_training.core.run_files import (
    CONFUSION_PNG,
    LABELS_MAPPING_FILE,
    MISTAKES_FILE,
    SUMMARY_FILE,
    WORST_TRACKS_FILE,
    eval_dir,
)
from classifier_training.core.tracks import (
    AGGREGATION_RULES,
    DEFAULT_RULE,
    AggregationRule,
)
from classifier_training.inference import Classifier, load_classifier
from classifier_training.inference.evaluation import (
    Evaluation,
    evaluate_samples,
    plot_mistakes,
)
from classifier_training.inference.tracks import (
    check_track_key,
    evaluate_tracks,
    plot_worst_tracks,
)
from classifier_training.plots import (
    plot_confusion_matrix,
    print_evaluation,
    save_figure,
    top_confusions,
)
from classifier_training.report import build_evaluation_report

#: Importable from here as before; they live in the inference library.
__all__ = [
    "Evaluation",
    "build_parser",
    "evaluate_samples",
    "main",
    "plot_mistakes",
    "write_report",
]


@dataclass(frozen=True)
class TrackOptions:
    """How ``classifier-evaluate --group-by`` scores tracks.

    Attributes:
        key: The group key (dotted path into ``metadata``).
        rule: The aggregation rule.
        min_confidence: Tracks below it abstain.
        coverage: Rows with and without the key.
    """

    key: str
    rule: AggregationRule
    min_confidence: float
    coverage: GroupCoverage


def write_report(
    evaluation: Evaluation,
    out_dir: Path,
    context: dict[str, Any],
    pairs: int = 10,
    gallery: int = 16,
    temperature: float = 1.0,
    tracks: TrackOptions | None = None,
) -> dict[str, Any]:
    """Write ``summary.json``, the confusion matrix, the mistakes gallery and
    ``report.html``.

    Args:
        evaluation: The evaluation.
        out_dir: Output folder (created).
        context: Extra keys for the summary (model, data root, split).
        pairs: Most-confused pairs to list.
        gallery: Mistakes to show.
        temperature: The model's calibration temperature (its probabilities
            are already divided by it).
        tracks: Score per track too (``--group-by``).

    Returns:
        The summary written.
    """
    matrix = evaluation.confusion()
    names = evaluation.display_names
    summary: dict[str, Any] = {
        **context,
        "num_rows": len(evaluation.samples),
        "excluded_rows": {
            "count": evaluation.excluded.count,
            "labels": evaluation.excluded.labels,
        },
        **evaluation.metrics(),
        "most_confused": top_confusions(matrix, names, pairs),
        "confident_mistakes": evaluation.confident_mistakes(gallery),
        "calibration": evaluation.calibration(temperature),
        "risk_coverage": evaluation.risk_coverage(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    where = f"{context['split']} " if "split" in context else ""
    title = (
        f"{where}confusion matrix: {len(evaluation.samples)} rows, "
        f"top-1 {summary['top1']:.2%}"
    )
    save_figure(plot_confusion_matrix(matrix, names, title), out_dir / CONFUSION_PNG)
    plot_mistakes(evaluation, gallery, out_dir / MISTAKES_FILE)
    if tracks is not None:
        per_track = evaluate_tracks(
            evaluation.probs,
            evaluation.class_names,
            evaluation.samples,
            tracks.key,
            tracks.rule,
            tracks.min_confidence,
            tracks.coverage,
        )
        summary["tracks"] = per_track.summary(summary["top1"], worst=pairs)
        if summary["tracks"]["worst"]:
            plot_worst_tracks(
                per_track,
                evaluation.probs,
                evaluation.samples,
                {name: i for i, name in enumerate(evaluation.class_names)},
                out_dir / WORST_TRACKS_FILE,
                limit=pairs,
            )
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    build_evaluation_report(out_dir, summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-evaluate",
        description="Evaluate a model.onnx or checkpoint on a labelled split.",
    )
    parser.add_argument("--model", type=Path, required=True, help=".onnx or .ckpt")
    parser.add_argument("--data-root", type=Path, required=True, help="dataset root")
    parser.add_argument(
        "--split",
        default="test",
        type=canonical_split,
        help="train, val (or valid) or test",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: "
        "<run folder>/eval/<split>, as training's own evaluation: the model's "
        "folder, or the run folder for RUN/checkpoints/x.ckpt)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--labels-mapping", type=Path, default=None)
    parser.add_argument("--provider", default=None, help="onnxruntime provider")
    parser.add_argument("--pairs", type=int, default=10, help="confused pairs listed")
    parser.add_argument("--gallery", type=int, default=16, help="mistakes shown")
    parser.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help="also score per track: JSONL rows carry metadata.KEY (e.g. track_id)",
    )
    parser.add_argument(
        "--rule",
        default=None,
        choices=AGGREGATION_RULES,
        help=f"how a track's crops are combined (default: {DEFAULT_RULE})",
    )
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="a track below this calibrated confidence abstains (default: 0)",
    )
    parser.add_argument(
        "--logit-adjust",
        type=float,
        default=None,
        metavar="TAU",
        help="post-hoc logit adjustment: subtract TAU * log(train prior) from the "
        "logits (1.0: balanced classes; 0: none); refits the temperature after it "
        "and writes the adjusted labels_mapping.json to --out",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-evaluate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if not 0.0 <= args.min_confidence <= 1.0:
        raise UsageError(
            f"--min-confidence must lie in [0, 1], got {args.min_confidence}"
        )
    if args.group_by is None and (args.rule is not None or args.min_confidence):
        raise UsageError(
            "--rule and --min-confidence score tracks: give --group-by too"
        )
    classifier = load_classifier(args.model, args.labels_mapping, args.provider)
    split_dir = find_splits(args.data_root)[args.split]
    if split_dir is None:
        folders = " (or ".join(f"{name}/" for name in SPLIT_ALIASES[args.split])
        closing = ")" if len(SPLIT_ALIASES[args.split]) > 1 else ""
        raise DataError(f"{args.data_root}: no {folders}{closing} split folder")
    samples = read_split(split_dir)
    tracks = None
    if args.group_by is not None:  # checked before the model runs
        tracks = TrackOptions(
            key=args.group_by,
            rule=args.rule or DEFAULT_RULE,
            min_confidence=args.min_confidence,
            coverage=check_track_key(
                samples, args.group_by, args.split, split_dir, detect_layout(split_dir)
            ),
        )
        if tracks.coverage.missing:
            print(
                f"warning: {split_dir}: {tracks.coverage.missing} row(s) without "
                f"metadata.{args.group_by}, each scored as its own track",
                file=sys.stderr,
            )
    out_dir = args.out or run_folder(args.model) / eval_dir(args.split)
    fitted_on = None
    if args.logit_adjust is not None:
        _set_logit_adjustment(classifier, args.model, args.logit_adjust)
    evaluation = _evaluate_rows(classifier, samples, split_dir, args.batch_size)
    if evaluation.excluded.count:
        print(f"warning: {evaluation.excluded.summary(args.split)}", file=sys.stderr)
    if args.logit_adjust is not None:
        evaluation, fitted_on = _recalibrate(classifier, evaluation, args, out_dir)
    context: dict[str, Any] = {
        "model": str(args.model),
        "data_root": str(args.data_root),
        "split": args.split,
        "logit_adjustment": _adjustment_record(classifier, fitted_on),
    }
    counts = classifier.contract.train_counts
    if counts is not None:
        context["top1_rare"] = top1_rare(
            evaluation.predicted, evaluation.targets, counts
        )
    summary = write_report(
        evaluation,
        out_dir,
        context,
        args.pairs,
        args.gallery,
        temperature=classifier.temperature,
        tracks=tracks,
    )
    print_evaluation(summary, evaluation.top_k, Console())
    print(f"report: {out_dir}")
    return 0


def _evaluate_rows(
    classifier: Classifier, samples: list[Sample], split_dir: Path, batch_size: int
) -> Evaluation:
    """Evaluate the rows of one split folder (some row must have a known label)."""
    evaluation = evaluate_samples(classifier, samples, batch_size)
    if not evaluation.samples:
        raise DataError(
            f"{split_dir}: no rows with a label the model knows "
            f"({evaluation.excluded.count} excluded)"
        )
    return evaluation


def _set_logit_adjustment(classifier: Classifier, model: Path, tau: float) -> None:
    """Make ``classifier`` adjust its logits by ``tau`` (uncalibrated, for now).

    Raises:
        UsageError: On ``tau < 0``, or a model without recorded class priors.
    """
    if not tau >= 0:  # NaN included
        raise UsageError(f"--logit-adjust must be >= 0, got {tau}")
    if classifier.contract.train_counts is None:
        raise UsageError(
            f"{model}: --logit-adjust needs the train split's class counts, which "
            "this model's labels mapping does not record (written before format 5)"
        )
    classifier.contract = classifier.contract.model_copy(
        update={"logit_adjust_tau": tau, "temperature": 1.0}
    )


def _recalibrate(
    classifier: Classifier,
    evaluation: Evaluation,
    args: argparse.Namespace,
    out_dir: Path,
) -> tuple[Evaluation, str]:
    """Fit the temperature on the adjusted logits; write the adjusted contract.

    The validation split of the data root is the held-out set the temperature
    is fitted on (the evaluated split when it is that one, or has none).

    Returns:
        The evaluation with calibrated probabilities, and the split the
        temperature was fitted on.
    """
    held_out, fitted_on = evaluation, args.split
    val_dir = find_splits(args.data_root)["val"]
    if args.split != "val" and val_dir is not None:
        rows = read_split(val_dir)
        held_out = _evaluate_rows(classifier, rows, val_dir, args.batch_size)
        fitted_on = "val"
    # T=1 probabilities: their log is the adjusted logits up to a per-row constant.
    temperature = fit_temperature(_log(held_out.probs), held_out.targets)
    classifier.contract = classifier.contract.model_copy(
        update={"temperature": temperature}
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_labels_mapping(classifier.contract, out_dir / LABELS_MAPPING_FILE)
    print(
        f"logit adjustment tau={classifier.contract.logit_adjust_tau:g}: temperature "
        f"{temperature:.3f} fitted on {fitted_on}; adjusted labels mapping: "
        f"{out_dir / LABELS_MAPPING_FILE}"
    )
    calibrated = softmax(_log(evaluation.probs), temperature)
    return replace(evaluation, probs=calibrated), fitted_on


def _log(probs: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray(np.log(np.maximum(probs, np.finfo(np.float64).tiny)))


def _adjustment_record(classifier: Classifier, fitted_on: str | None) -> dict[str, Any]:
    """Which logit adjustment the evaluation ran with (``tau`` 0: none)."""
    record: dict[str, Any] = {
        "tau": classifier.contract.logit_adjust_tau,
        "source": "labels mapping" if fitted_on is None else "--logit-adjust",
    }
    if fitted_on is not None:
        record["temperature_fitted_on"] = fitted_on
    return record


if __name__ == "__main__":
    raise SystemExit(main())
