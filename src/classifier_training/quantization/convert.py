"""Writing the int8 and fp16 copies of an fp32 ``model.onnx``.

int8: onnxruntime static quantization in QDQ format (QuantizeLinear /
DequantizeLinear pairs around each operator, which onnxruntime fuses into
integer kernels), weights per output channel, after ``quant_pre_process``
(shape inference and graph clean-up, onnxruntime's first step for static
quantization). Activation ranges come from a :class:`CalibrationSet`; the
scheme from :mod:`~classifier_training.quantization.schemes`.

fp16: onnxconverter-common's ``convert_float_to_float16`` with
``keep_io_types=True``: the weights and arithmetic are fp16, the input and the
logits stay float32, so every consumer feeds and reads the same arrays.

Both files record their precision in the ONNX metadata
(:data:`~classifier_training.inference.runtime.PRECISION_METADATA_KEY`) and are
self-contained (no external data), like ``model.onnx``.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from classifier_training.inference.runtime import PRECISION_METADATA_KEY
from classifier_training.quantization.schemes import Int8Scheme

#: Images per calibration run; the ranges are merged batch by batch, so memory
#: stays that of one batch's activations whatever the number of images.
CALIBRATION_BATCH = 16
_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}


class _BatchReader(CalibrationDataReader):  # type: ignore[misc]  # untyped base
    """Feeds the calibration images in batches; ranges are taken one batch at a
    time (``set_range`` is onnxruntime's strided calibration protocol)."""

    def __init__(self, input_name: str, images: npt.NDArray[np.float32]) -> None:
        self.input_name = input_name
        self.batches = [
            images[start : start + CALIBRATION_BATCH]
            for start in range(0, len(images), CALIBRATION_BATCH)
        ]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._pending = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._pending, None)
        return None if batch is None else {self.input_name: batch}


def stamp_precision(model: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    """Record ``precision`` in the model's metadata (replacing an earlier one)."""
    kept = [p for p in model.metadata_props if p.key != PRECISION_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = PRECISION_METADATA_KEY, precision
    return model


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save_model(model, str(path), save_as_external_data=False)


def write_int8(
    fp32_path: Path,
    out_path: Path,
    images: npt.NDArray[np.float32],
    input_name: str,
    scheme: Int8Scheme,
    method: str = "minmax",
) -> None:
    """Quantize ``fp32_path`` statically to int8 QDQ at ``out_path``.

    Args:
        fp32_path: The fp32 model.
        out_path: The file to write (overwritten).
        images: Calibration images, ``N x 3 x H x W`` float32, preprocessed.
        input_name: The model's input name.
        scheme: Activation and weight types, ``reduce_range``.
        method: ``minmax``, ``entropy`` or ``percentile``.
    """
    if method not in _METHODS:
        raise ValueError(f"calibration method must be one of {sorted(_METHODS)}")
    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantized = Path(tmp) / "int8.onnx"
        with warnings.catch_warnings():
            # onnxruntime repeats its format advice as warnings on every call.
            warnings.simplefilter("ignore")
            quantize_static(
                str(prepared),
                str(quantized),
                _BatchReader(input_name, images),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=scheme.reduce_range,
                activation_type=_TYPES[scheme.activation_type],
                weight_type=_TYPES[scheme.weight_type],
                calibrate_method=_METHODS[method],
                extra_options={"CalibStridedMinMax": 1},
            )
        _save(stamp_precision(onnx.load(str(quantized)), "int8"), out_path)


def write_fp16(fp32_path: Path, out_path: Path) -> None:
    """Convert ``fp32_path`` to fp16 with float32 input and output at ``out_path``.

    Args:
        fp32_path: The fp32 model.
        out_path: The file to write (overwritten).
    """
    from onnxconverter_common.float16 import convert_float_to_float16

    model = onnx.load(str(fp32_path))
    with warnings.catch_warnings():
        # One warning per weight too small for fp16 (it is flushed to 1e-7).
        warnings.simplefilter("ignore", UserWarning)
        half = convert_float_to_float16(model, keep_io_types=True)
    _save(stamp_precision(half, "fp16"), out_path)
