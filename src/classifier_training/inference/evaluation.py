"""Scoring a model on labelled rows: :class:`Evaluation` and what it draws.

The domain object behind ``classifier-evaluate``
(:mod:`classifier_training.inference.evaluate`) and the training run's
end-of-fit step: predictions of one model on one split, the metrics computed
from them with numpy (no torch: an ONNX model is evaluated without it) and the
gallery of the most confident mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_training.core.calibration import (
    COVERAGE_THRESHOLDS,
    expected_calibration_error,
    risk_coverage,
    softmax,
)
from classifier_training.core.image_io import load_image
from classifier_training.core.metrics import (
    TOP_K,
    cap_top_k,
    confusion_counts,
    per_class_scores,
)
from classifier_training.core.preprocessing import resize_to_input
from classifier_training.core.readers import (
    DataError,
    ExcludedRows,
    Sample,
    display_name,
    split_known,
)
from classifier_training.inference.base import Classifier
from classifier_training.plots import BACKGROUND, GridTile, render_grid, save_image


@dataclass
class Evaluation:
    """Predictions and metrics of one model on one split.

    Attributes:
        class_names: Class names in output-index order.
        samples: The evaluated rows (labels known to the model).
        targets: True class index per row.
        probs: ``N x C`` softmax probabilities per row.
        excluded: Rows left out because the model does not know their label.
    """

    class_names: list[str]
    samples: list[Sample]
    targets: npt.NDArray[Any]
    probs: npt.NDArray[Any]
    excluded: ExcludedRows

    @property
    def top_k(self) -> int:
        """The ``k`` of the top-k accuracy (5, or fewer classes)."""
        return cap_top_k(TOP_K, len(self.class_names))

    @property
    def display_names(self) -> list[str]:
        """Class names for people (``<empty>`` for ``""``), by index."""
        return [display_name(name) for name in self.class_names]

    @property
    def predicted(self) -> npt.NDArray[Any]:
        """Top-1 class index per row (ties go to the lower index)."""
        return np.asarray(self.probs.argmax(axis=1))

    def confusion(self) -> npt.NDArray[np.int64]:
        """``C x C`` counts; rows are true classes, columns predictions."""
        return confusion_counts(self.targets, self.predicted, len(self.class_names))

    def metrics(self) -> dict[str, Any]:
        """Top-1/top-k accuracy, per-class and macro precision/recall/F1.

        Computed with numpy from the confusion matrix (the same definitions as
        torchmetrics' ``average=None`` metrics): evaluating an ONNX model must
        not import torch. Precision of a class that is never predicted is 0;
        classes without rows have support 0 and are left out of the macro
        averages.
        """
        per_class = per_class_scores(self.confusion())
        support = per_class.pop("support")
        present = support > 0
        # Stable order: ties go to the lower class index, as in predictions.
        order = np.argsort(-self.probs, axis=1, kind="stable")

        def accuracy(k: int) -> float:
            hits = (order[:, :k] == self.targets[:, None]).any(axis=1)
            return float(hits.mean()) if len(hits) else 0.0

        return {
            "top1": accuracy(1),
            # Named top5 whatever k is (like training's acc_top5); k is recorded.
            "top5": accuracy(self.top_k),
            "top5_k": self.top_k,
            "macro": {
                name: float(values[present].mean()) if present.any() else 0.0
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

    def calibration(self, temperature: float) -> dict[str, float]:
        """ECE of the confidences with the model's temperature and without it.

        ``log(probs) * T`` equals the raw logits up to a per-row constant, which
        the softmax ignores, so the uncalibrated confidences are recovered
        without running the model twice.
        """
        with np.errstate(divide="ignore"):
            raw = softmax(np.log(self.probs) * temperature)
        return {
            "temperature": temperature,
            "ece": expected_calibration_error(self.probs, self.targets),
            "ece_uncalibrated": expected_calibration_error(raw, self.targets),
        }

    def risk_coverage(
        self, thresholds: tuple[float, ...] = COVERAGE_THRESHOLDS
    ) -> list[dict[str, float | int]]:
        """Accuracy and coverage when refusing predictions under each threshold."""
        return risk_coverage(self.probs, self.targets, thresholds)

    def mistake_rows(self, limit: int = 16) -> npt.NDArray[np.int64]:
        """Indices of up to ``limit`` wrong rows, most confident first."""
        confidence = self.probs.max(axis=1)
        wrong = np.flatnonzero(self.predicted != self.targets)
        return wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]

    def confident_mistakes(self, limit: int = 16) -> list[dict[str, Any]]:
        """Wrong rows, most confident first."""
        predicted = self.predicted
        confidence = self.probs.max(axis=1)
        return [
            {
                "image": str(self.samples[i].image),
                "where": self.samples[i].where,
                "true": display_name(self.class_names[int(self.targets[i])]),
                "predicted": display_name(self.class_names[int(predicted[i])]),
                "confidence": float(confidence[i]),
            }
            for i in self.mistake_rows(limit)
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
        probs=probs[rows],
        excluded=excluded,
    )


def plot_mistakes(
    evaluation: Evaluation, limit: int, path: Path, tile: int = 96
) -> Path:
    """Save a gallery of the most confident mistakes (true, predicted, confidence).

    Drawn by the training run's own sample grid
    (:func:`~classifier_training.plots.render_grid`); each image
    is letterboxed to a ``tile`` square.

    Args:
        evaluation: The evaluation.
        limit: Mistakes shown.
        path: The ``.png`` to write (atomically).
        tile: Tile side in pixels.

    Returns:
        ``path``.
    """
    predicted = evaluation.predicted
    confidence = evaluation.probs.max(axis=1)
    tiles = [
        GridTile(
            index=int(row),
            image=np.asarray(
                resize_to_input(
                    load_image(evaluation.samples[row].image),
                    tile,
                    "letterbox",
                    BACKGROUND,
                )
            ),
            label=int(evaluation.targets[row]),
            pred=int(predicted[row]),
            confidence=float(confidence[row]),
        )
        for row in evaluation.mistake_rows(limit)
    ]
    wrong = int((predicted != evaluation.targets).sum())
    title = (
        f"{len(tiles)} most confident of {wrong} mistakes in "
        f"{len(evaluation.samples)} rows"
        if tiles
        else f"no mistakes in {len(evaluation.samples)} rows"
    )
    grid = render_grid(
        [("most confident mistakes", tiles)], evaluation.display_names, title, tile
    )
    return save_image(grid, path)
