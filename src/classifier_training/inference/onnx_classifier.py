"""``ONNXClassifier``: an exported ONNX model run with onnxruntime (no torch).

Every precision ``classifier-export`` writes loads the same way (``model.onnx``,
``model.int8.onnx``, ``model.fp16.onnx``): all take and return float32 and share
the ``labels_mapping.json`` beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier_training.core.contract import find_labels_mapping, read_labels_mapping
from classifier_training.core.errors import ClassifierError
from classifier_training.inference.base import Classifier, ModelLoadError
from classifier_training.inference.runtime import (
    DEFAULT_RUNTIME,
    RuntimeSettings,
    choose_provider,
    model_precision,
    open_session,
)


class ONNXClassifier(Classifier):
    """Classify images with an exported ONNX model, without torch at run time.

    The model takes the contract's input (``N x 3 x H x W`` float32, normalised)
    and returns its output (``N x num_classes`` logits). The contract comes from
    ``labels_mapping.json`` beside the model (or in its run folder, see
    :func:`~classifier_training.core.contract.find_labels_mapping`), or from
    ``labels_mapping_path``.

    Args:
        model_path: The ``.onnx`` file.
        labels_mapping_path: The mapping, when it is not beside the model.
        provider: Force an execution provider (``cpu``, ``cuda`` or a full
            onnxruntime name); default CUDA when available, else CPU.
        intra_op_threads: Threads per operator (default: ``settings``').
        settings: onnxruntime session settings (the project's defaults).

    Attributes:
        precision: ``fp32``, ``int8`` or ``fp16``, as the model file records it.

    Raises:
        ModelLoadError: If the model or mapping is missing, unreadable, or they do
            not fit each other (one line naming the file).
    """

    def __init__(
        self,
        model_path: str | Path,
        labels_mapping_path: str | Path | None = None,
        provider: str | None = None,
        intra_op_threads: int | None = None,
        settings: RuntimeSettings = DEFAULT_RUNTIME,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelLoadError(f"{self.model_path}: model file not found")
        try:
            mapping_path = find_labels_mapping(self.model_path, labels_mapping_path)
            contract = read_labels_mapping(mapping_path)
        except ClassifierError as error:
            raise ModelLoadError(str(error)) from None
        super().__init__(contract, mapping_path)
        self.provider = choose_provider(provider)
        self.session = open_session(
            self.model_path, self.provider, intra_op_threads, settings
        )
        self.precision = model_precision(self.session)
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        want_in, want_out = self.contract.input_name, self.contract.output_name
        if want_in not in inputs or want_out not in outputs:
            raise ModelLoadError(
                f"{self.model_path}: expected input {want_in!r} and output "
                f"{want_out!r}, found inputs {list(inputs)} outputs {list(outputs)}"
            )
        shape = inputs[want_in].shape
        size = self.image_size
        static = len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        if static and tuple(shape[2:]) != (size, size):
            raise ModelLoadError(
                f"{self.model_path}: model input is {shape[2]}x{shape[3]} but "
                f"{self.mapping_path} says image_size {size}"
            )
        out_shape = outputs[want_out].shape
        if isinstance(out_shape[-1], int) and out_shape[-1] != self.num_classes:
            raise ModelLoadError(
                f"{self.model_path}: model has {out_shape[-1]} outputs but "
                f"{self.mapping_path} lists {self.num_classes} classes"
            )

    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the ONNX model on a preprocessed float32 batch."""
        (logits,) = self.session.run(
            [self.contract.output_name],
            {self.contract.input_name: np.ascontiguousarray(batch, np.float32)},
        )
        return np.asarray(logits, dtype=np.float32)
