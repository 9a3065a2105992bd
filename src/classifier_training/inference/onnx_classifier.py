"""``ONNXClassifier``: an exported ``model.onnx`` run with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from classifier_training.inference.base import (
    Classifier,
    ModelLoadError,
    find_labels_mapping,
)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def choose_provider(requested: str | None = None) -> str:
    """Pick an onnxruntime execution provider.

    Args:
        requested: A provider name (``CUDAExecutionProvider``) or a short form
            (``cuda``, ``cpu``); ``None`` picks CUDA when available, else CPU.

    Returns:
        The provider name.

    Raises:
        ModelLoadError: If the requested provider is not available in this install
            (a ``ValueError``).
    """
    available = ort.get_available_providers()
    if requested is None:
        return next(p for p in (*PREFERRED_PROVIDERS, available[0]) if p in available)
    name = requested
    if not name.endswith("ExecutionProvider"):
        name = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "Tensorrt"}.get(
            name.lower(), name
        ) + "ExecutionProvider"
    if name not in available:
        raise ModelLoadError(
            f"onnxruntime provider {requested!r} is not available (available: "
            f"{', '.join(available)})"
        )
    return name


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Session options: full graph optimisation, intra-op threads as given.

    Args:
        intra_op_threads: Threads per operator (``None``: onnxruntime's default,
            one per physical core).

    Returns:
        The options.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return options


class ONNXClassifier(Classifier):
    """Classify images with an exported ONNX model, without torch at run time.

    The model must take ``input`` (``N x 3 x H x W`` float32, normalised) and
    return ``logits`` (``N x num_classes``). The preprocessing and class names come
    from ``labels_mapping.json`` beside the model (or in its run folder, see
    :func:`~classifier_training.labels_mapping.mapping_candidates`), or from
    ``labels_mapping_path``.

    Args:
        model_path: The ``.onnx`` file.
        labels_mapping_path: The mapping, when it is not beside the model.
        provider: Force an execution provider (``cpu``, ``cuda`` or a full
            onnxruntime name); default CUDA when available, else CPU.
        intra_op_threads: Threads per operator (default: onnxruntime's choice).

    Raises:
        ModelLoadError: If the model or mapping is missing, unreadable, or they do
            not fit each other.
    """

    def __init__(
        self,
        model_path: str | Path,
        labels_mapping_path: str | Path | None = None,
        provider: str | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"{self.model_path}: model file not found")
        mapping_path = find_labels_mapping(self.model_path, labels_mapping_path)
        super().__init__(self._read_mapping(mapping_path), mapping_path)
        self.provider = choose_provider(provider)
        try:
            self.session = ort.InferenceSession(
                str(self.model_path),
                sess_options=session_options(intra_op_threads),
                providers=[self.provider],
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadError(
                f"{self.model_path}: cannot load ONNX model ({error})"
            ) from None
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelLoadError(
                f"{self.model_path}: expected input {INPUT_NAME!r} and output "
                f"{OUTPUT_NAME!r}, found inputs {list(inputs)} outputs {list(outputs)}"
            )
        shape = inputs[INPUT_NAME].shape
        size = self.image_size
        static = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        if static and tuple(shape[2:]) != (size, size):
            raise ModelLoadError(
                f"{self.model_path}: model input is {shape[2]}x{shape[3]} but "
                f"{self.mapping_path} says image_size {size}"
            )
        out_shape = outputs[OUTPUT_NAME].shape
        if isinstance(out_shape[-1], int) and out_shape[-1] != self.num_classes:
            raise ModelLoadError(
                f"{self.model_path}: model has {out_shape[-1]} outputs but "
                f"{self.mapping_path} lists {self.num_classes} classes"
            )

    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the ONNX model on a preprocessed float32 batch."""
        (logits,) = self.session.run(
            [OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, np.float32)}
        )
        return np.asarray(logits, dtype=np.float32)
