"""``classifier-evaluate``: measure a model on a labelled split and explain errors.

Works on both dataset layouts. Class names come from the model's
``labels_mapping.json``; rows whose label the model does not know are excluded
and counted. Writes to ``--out``:

* ``summary.json``: top-1, top-5, per-class precision/recall/F1/support, macro
  averages, excluded rows, the most-confused class pairs and the most confident
  mistakes;
* ``confusion_matrix.png`` (rows: true class, columns: predicted);
* ``mistakes.png``: a gallery of the most confident mistakes.

Exit status: 0 on success, 2 on unusable model, data or arguments.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rich.console import Console
from rich.table import Table
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from classifier_training.data.readers import (
    DataError,
    ExcludedRows,
    Sample,
    display_name,
    find_splits,
    read_split,
    split_known,
)
from classifier_training.inference import ModelLoadError, load_classifier
from classifier_training.inference.base import Classifier
from classifier_training.inference.preprocess import PreprocessingError
from classifier_training.utils.io import atomic_path, atomic_write_json

SUMMARY_FILE = "summary.json"
CONFUSION_FILE = "confusion_matrix.png"
GALLERY_FILE = "mistakes.png"


@dataclass
class Evaluation:
    """Predictions and metrics of one model on one split.

    Attributes:
        class_names: Class names in output-index order.
        samples: The evaluated rows (labels known to the model).
        targets: True class index per row.
        probs: ``N x C`` softmax probabilities per row.
        excluded: Rows left out because the model does not know their label.
        top_k: The ``k`` of the top-k accuracy (5, or fewer classes).
    """

    class_names: list[str]
    samples: list[Sample]
    targets: npt.NDArray[Any]
    probs: npt.NDArray[Any]
    excluded: ExcludedRows
    top_k: int

    @property
    def predicted(self) -> npt.NDArray[Any]:
        """Top-1 class index per row (ties go to the lower index)."""
        return np.asarray(self.probs.argmax(axis=1))

    def confusion(self) -> npt.NDArray[Any]:
        """``C x C`` counts; rows are true classes, columns predictions."""
        return np.asarray(
            multiclass_confusion_matrix(
                torch.from_numpy(self.probs),
                torch.from_numpy(self.targets),
                num_classes=len(self.class_names),
            ).numpy()
        )

    def metrics(self) -> dict[str, Any]:
        """Top-1/top-k accuracy, per-class and macro precision/recall/F1.

        Precision of a class that is never predicted is 0 (torchmetrics'
        convention); classes without rows have support 0 and are left out of the
        macro averages.
        """
        preds, target = torch.from_numpy(self.probs), torch.from_numpy(self.targets)
        num_classes = len(self.class_names)
        common: dict[str, Any] = {"num_classes": num_classes, "average": None}
        per_class = {
            "precision": multiclass_precision(preds, target, **common),
            "recall": multiclass_recall(preds, target, **common),
            "f1": multiclass_f1_score(preds, target, **common),
        }
        support = np.bincount(self.targets, minlength=num_classes)
        present = support > 0

        def accuracy(k: int) -> float:
            return float(
                multiclass_accuracy(
                    preds, target, num_classes=num_classes, top_k=k, average="micro"
                )
            )

        return {
            "top1": accuracy(1),
            # Named top5 whatever k is (like training's acc_top5); k is recorded.
            "top5": accuracy(self.top_k),
            "top5_k": self.top_k,
            "macro": {
                name: float(values.numpy()[present].mean()) if present.any() else 0.0
                for name, values in per_class.items()
            },
            "per_class": {
                display_name(name): {
                    "precision": float(per_class["precision"][i]),
                    "recall": float(per_class["recall"][i]),
                    "f1": float(per_class["f1"][i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(self.class_names)
            },
        }

    def most_confused(self, limit: int = 10) -> list[dict[str, Any]]:
        """The off-diagonal confusion cells with the most rows, largest first."""
        matrix = self.confusion()
        support = matrix.sum(axis=1)
        pairs = [
            (int(matrix[t, p]), t, p)
            for t in range(len(matrix))
            for p in range(len(matrix))
            if t != p and matrix[t, p] > 0
        ]
        pairs.sort(key=lambda item: (-item[0], item[1], item[2]))
        return [
            {
                "true": display_name(self.class_names[t]),
                "predicted": display_name(self.class_names[p]),
                "count": count,
                "share_of_true": count / int(support[t]),
            }
            for count, t, p in pairs[:limit]
        ]

    def confident_mistakes(self, limit: int = 16) -> list[dict[str, Any]]:
        """Wrong rows, most confident first."""
        predicted = self.predicted
        confidence = self.probs.max(axis=1)
        wrong = np.flatnonzero(predicted != self.targets)
        order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
        return [
            {
                "image": str(self.samples[i].image),
                "where": self.samples[i].where,
                "true": display_name(self.class_names[int(self.targets[i])]),
                "predicted": display_name(self.class_names[int(predicted[i])]),
                "confidence": float(confidence[i]),
            }
            for i in order
        ]


def evaluate_samples(
    classifier: Classifier, samples: list[Sample], batch_size: int = 64
) -> Evaluation:
    """Predict every row whose label the model knows.

    Each distinct image is decoded and predicted once, even when several JSONL
    rows share it.

    Args:
        classifier: The model.
        samples: Labelled rows of a split.
        batch_size: Images per network call.

    Returns:
        The evaluation.

    Raises:
        DataError: If an image file is missing (named with its annotation line).
    """
    kept, excluded = split_known(samples, classifier.class_to_idx)
    for sample in kept:
        if not sample.image.is_file():
            raise DataError(f"{sample.where}: image file not found: {sample.image}")
    unique = sorted({s.image for s in kept})
    index = {path: i for i, path in enumerate(unique)}
    probs = np.zeros((len(unique), classifier.num_classes), dtype=np.float64)
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        batch = []
        for path in chunk:
            try:
                batch.append(classifier.preprocessor(path))
            except Exception as error:  # PIL raises many types for corrupt files
                raise DataError(f"{path}: cannot read image ({error})") from None
        probs[start : start + len(chunk)] = classifier.predict_proba(np.stack(batch))
    rows = np.asarray([index[s.image] for s in kept], dtype=np.int64)
    targets = np.asarray([classifier.class_to_idx[s.label] for s in kept], np.int64)
    return Evaluation(
        class_names=list(classifier.class_names),
        samples=kept,
        targets=targets,
        probs=probs[rows] if len(rows) else probs[:0],
        excluded=excluded,
        top_k=min(5, classifier.num_classes),
    )


def plot_confusion(matrix: npt.NDArray[Any], names: list[str], path: Path) -> Path:
    """Save the confusion matrix as a heat map (counts written when it is small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    side = min(4 + 0.45 * n, 40)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    labels = [display_name(name) for name in names]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 40:
        peak = matrix.max() if matrix.size else 0
        for t in range(n):
            for p in range(n):
                if matrix[t, p]:
                    colour = "white" if matrix[t, p] > peak / 2 else "black"
                    ax.text(p, t, str(matrix[t, p]), ha="center", va="center",
                            fontsize=7, color=colour)  # fmt: skip
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path


def plot_mistakes(mistakes: list[dict[str, Any]], path: Path) -> Path:
    """Save a gallery of mistakes (image, true and predicted label, confidence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from classifier_training.data.image_io import load_image

    cols = max(1, min(4, len(mistakes)))
    rows = max(1, -(-len(mistakes) // cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3 * cols, 3.4 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, mistake in zip(axes.flat, mistakes, strict=False):
        ax.imshow(load_image(mistake["image"]))
        ax.set_title(
            f"true {mistake['true']}\npred {mistake['predicted']} "
            f"({mistake['confidence']:.2f})",
            fontsize=9,
        )
    if not mistakes:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(
    evaluation: Evaluation,
    out_dir: Path,
    context: dict[str, Any],
    pairs: int = 10,
    gallery: int = 16,
) -> dict[str, Any]:
    """Write ``summary.json``, the confusion matrix and the mistakes gallery.

    Args:
        evaluation: The evaluation.
        out_dir: Output folder (created).
        context: Extra keys for the summary (model, data root, split).
        pairs: Most-confused pairs to list.
        gallery: Mistakes to show.

    Returns:
        The summary written.
    """
    mistakes = evaluation.confident_mistakes(gallery)
    summary: dict[str, Any] = {
        **context,
        "num_rows": len(evaluation.samples),
        "excluded_rows": {
            "count": evaluation.excluded.count,
            "labels": evaluation.excluded.labels,
        },
        **evaluation.metrics(),
        "most_confused": evaluation.most_confused(pairs),
        "confident_mistakes": mistakes,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(
        evaluation.confusion(), evaluation.class_names, out_dir / CONFUSION_FILE
    )
    plot_mistakes(mistakes, out_dir / GALLERY_FILE)
    atomic_write_json(out_dir / SUMMARY_FILE, summary)
    return summary


def print_report(summary: dict[str, Any], top_k: int, console: Console) -> None:
    """Print the per-class table, the overall numbers and the confused pairs."""
    table = Table(title=f"{summary['split']}: {summary['num_rows']} rows")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in summary["per_class"].items():
        table.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    macro = summary["macro"]
    table.add_section()
    table.add_row(
        "macro", f"{macro['precision']:.3f}", f"{macro['recall']:.3f}",
        f"{macro['f1']:.3f}", str(summary["num_rows"]),
    )  # fmt: skip
    console.print(table)
    if summary["most_confused"]:
        pairs = Table(title="most confused (true -> predicted)")
        for column in ("true", "predicted", "rows", "share of true"):
            pairs.add_column(column)
        for pair in summary["most_confused"]:
            pairs.add_row(
                pair["true"],
                pair["predicted"],
                str(pair["count"]),
                f"{100 * pair['share_of_true']:.1f}%",
            )
        console.print(pairs)
    console.print(
        f"top-1 {100 * summary['top1']:.2f}%  top-{top_k} "
        f"{100 * summary['top5']:.2f}%  excluded rows "
        f"{summary['excluded_rows']['count']}"
    )


def run_folder(model_path: Path) -> Path:
    """The run folder of ``RUN/model.onnx`` or ``RUN/checkpoints/x.ckpt``."""
    folder = model_path.resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-evaluate",
        description="Evaluate a model.onnx or checkpoint on a labelled split.",
    )
    parser.add_argument("--model", type=Path, required=True, help=".onnx or .ckpt")
    parser.add_argument("--data-root", type=Path, required=True, help="dataset root")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-evaluate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(args.model, args.labels_mapping, args.provider)
        split_dir = find_splits(args.data_root)[args.split]
        if split_dir is None:
            raise DataError(f"{args.data_root}: no {args.split}/ split folder")
        samples = read_split(split_dir)
        evaluation = evaluate_samples(classifier, samples, args.batch_size)
        if not evaluation.samples:
            raise DataError(
                f"{split_dir}: no rows with a label the model knows "
                f"({evaluation.excluded.count} excluded)"
            )
    except (ModelLoadError, PreprocessingError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if evaluation.excluded.count:
        print(f"warning: {evaluation.excluded.summary(args.split)}", file=sys.stderr)
    out_dir = args.out or run_folder(args.model) / f"evaluation_{args.split}"
    context = {
        "model": str(args.model),
        "data_root": str(args.data_root),
        "split": args.split,
    }
    summary = write_report(evaluation, out_dir, context, args.pairs, args.gallery)
    print_report(summary, evaluation.top_k, Console())
    print(f"report: {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
