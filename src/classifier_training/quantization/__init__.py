"""int8 and fp16 copies of ``model.onnx``, each kept only if an accuracy guard
allows it (``classifier-export --precision int8|fp16``).

* :mod:`.schemes`: which int8 scheme a CPU runs fast; calibration methods.
* :mod:`.calibration_set`: the images int8 ranges are calibrated on.
* :mod:`.convert`: writing the int8 (static QDQ) and fp16 files.
* :mod:`.guard`: the accuracy guard (fp32 against the new file on one split).
* :mod:`.pipeline`: write, guard, keep, record in ``export_summary.json``.

Nothing here imports torch: an exported ``model.onnx`` can be quantized on a
machine with onnxruntime only.
"""

from classifier_training.quantization.guard import GuardResult
from classifier_training.quantization.pipeline import (
    REDUCED_PRECISIONS,
    GuardRefusedError,
    PrecisionExport,
    PrecisionOptions,
    export_precision,
    gather_inputs,
)
from classifier_training.quantization.schemes import Int8Scheme, int8_scheme

__all__ = [
    "REDUCED_PRECISIONS",
    "GuardRefusedError",
    "GuardResult",
    "Int8Scheme",
    "PrecisionExport",
    "PrecisionOptions",
    "export_precision",
    "gather_inputs",
    "int8_scheme",
]
