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

Exit status: 0 on success, 2 on unusable model, data or arguments.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from classifier_training.core.contract import run_folder
from classifier_training.core.errors import UsageError, run_command
from classifier_training.core.groups import GroupCoverage
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import (
    SPLIT_ALIASES,
    DataError,
    canonical_split,
    detect_layout,
    find_splits,
    read_split,
)
from classifier_training.core.run_files import (
    CONFUSION_PNG,
    MISTAKES_FILE,
    SUMMARY_FILE,
    WORST_TRACKS_FILE,
)
from classifier_training.core.tracks import (
    AGGREGATION_RULES,
    DEFAULT_RULE,
    AggregationRule,
)
from classifier_training.inference import load_classifier
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
        "<run folder>/evaluation_<split>: the model's folder, or the run folder "
        "for RUN/checkpoints/x.ckpt)",
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
    evaluation = evaluate_samples(classifier, samples, args.batch_size)
    if not evaluation.samples:
        raise DataError(
            f"{split_dir}: no rows with a label the model knows "
            f"({evaluation.excluded.count} excluded)"
        )
    if evaluation.excluded.count:
        print(f"warning: {evaluation.excluded.summary(args.split)}", file=sys.stderr)
    out_dir = args.out or run_folder(args.model) / f"evaluation_{args.split}"
    context = {
        "model": str(args.model),
        "data_root": str(args.data_root),
        "split": args.split,
    }
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


if __name__ == "__main__":
    raise SystemExit(main())
