"""Using a trained model: ONNX and checkpoint classifiers, predict and evaluate.

Example:
    >>> from classifier_training.inference import load_classifier
    >>> classifier = load_classifier("outputs/run/model.onnx")
    >>> prediction = classifier.predict("crop.png", top_k=3)
    >>> prediction.label, prediction.confidence
"""

from __future__ import annotations

from pathlib import Path

from classifier_training.core.contract import find_labels_mapping
from classifier_training.core.preprocessing import Preprocessor
from classifier_training.inference.base import Classifier, ModelLoadError
from classifier_training.inference.results import ClassScore, Prediction

ONNX_SUFFIXES = frozenset({".onnx"})


def load_classifier(
    model_path: str | Path,
    labels_mapping_path: str | Path | None = None,
    provider: str | None = None,
) -> Classifier:
    """Open a ``.onnx`` model or a checkpoint (any other suffix) as a classifier.

    Every ONNX precision loads alike (``model.onnx``, ``model.int8.onnx``,
    ``model.fp16.onnx``; they share the ``labels_mapping.json`` beside them).

    Args:
        model_path: An ONNX model or a Lightning checkpoint (``.ckpt``).
        labels_mapping_path: The mapping of an ONNX model, when it is not found
            beside it (a checkpoint carries its own: giving one is an error).
        provider: onnxruntime provider for ONNX models (ignored for checkpoints).

    Returns:
        An :class:`ONNXClassifier` or :class:`CheckpointClassifier`.

    Raises:
        ModelLoadError: One line naming the file when it cannot be used.
    """
    path = Path(model_path)
    if path.suffix.lower() in ONNX_SUFFIXES:
        from classifier_training.inference.onnx_classifier import ONNXClassifier

        return ONNXClassifier(path, labels_mapping_path, provider=provider)
    from classifier_training.inference.checkpoint_classifier import (
        CheckpointClassifier,
    )

    if labels_mapping_path is not None:
        raise ModelLoadError(
            f"{path}: a checkpoint carries its own labels mapping; "
            "--labels-mapping applies to .onnx models only"
        )
    return CheckpointClassifier(path)


def __getattr__(name: str) -> object:
    # Lazy, so importing the package does not load onnxruntime and torchvision both.
    if name == "ONNXClassifier":
        from classifier_training.inference.onnx_classifier import ONNXClassifier

        return ONNXClassifier
    if name == "CheckpointClassifier":
        from classifier_training.inference.checkpoint_classifier import (
            CheckpointClassifier,
        )

        return CheckpointClassifier
    raise AttributeError(name)


__all__ = [
    "CheckpointClassifier",
    "ClassScore",
    "Classifier",
    "ModelLoadError",
    "ONNXClassifier",
    "Prediction",
    "Preprocessor",
    "find_labels_mapping",
    "load_classifier",
]
