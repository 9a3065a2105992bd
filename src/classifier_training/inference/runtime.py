"""onnxruntime in one place: provider choice, session options, opening a model.

``classifier-export`` (its verification run and accuracy guard), the benchmarks
and :class:`ONNXClassifier` open their sessions here, so all read a bad file the
same way and run with the same :class:`RuntimeSettings`.

Models written by ``classifier-export --precision`` carry their precision in the
ONNX metadata (:data:`PRECISION_METADATA_KEY`); :func:`model_precision` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from classifier_training.inference.base import ModelLoadError

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
#: ONNX ``metadata_props`` key naming a model's precision (``int8``, ``fp16``);
#: models without it are fp32.
PRECISION_METADATA_KEY = "classifier_training.precision"
GraphOptimization = Literal["disable", "basic", "extended", "all"]
_GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class RuntimeSettings:
    """The onnxruntime session settings every session of this project uses.

    Attributes:
        graph_optimization: onnxruntime's graph optimisation level (``all``:
            constant folding, fusions and layout changes; what int8 QDQ models
            need for their fused integer kernels).
        intra_op_threads: Threads per operator (``None``: onnxruntime's default,
            one per physical core).
        cpu_mem_arena: Keep freed CPU buffers for reuse between runs.
        spinning: Let idle worker threads spin for the next run (lower latency;
            steals the CPU from anything else running, so off for benchmarks
            that take turns between engines).
    """

    graph_optimization: GraphOptimization = "all"
    intra_op_threads: int | None = None
    cpu_mem_arena: bool = True
    spinning: bool = True

    def describe(self) -> str:
        """One line for tables and logs."""
        threads = self.intra_op_threads or "default"
        return (
            f"graph optimisation {self.graph_optimization}, intra-op threads "
            f"{threads}, CPU memory arena {'on' if self.cpu_mem_arena else 'off'}, "
            f"thread spinning {'on' if self.spinning else 'off'}"
        )


DEFAULT_RUNTIME = RuntimeSettings()


def choose_provider(requested: str | None = None) -> str:
    """Pick an onnxruntime execution provider.

    Args:
        requested: A provider name (``CUDAExecutionProvider``) or a short form
            (``cuda``, ``cpu``); ``None`` picks CUDA when available, else CPU.

    Returns:
        The provider name.

    Raises:
        ModelLoadError: If the requested provider is not in this install.
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


def session_options(
    intra_op_threads: int | None = None, settings: RuntimeSettings = DEFAULT_RUNTIME
) -> ort.SessionOptions:
    """onnxruntime options from :class:`RuntimeSettings` (logging: errors only).

    Args:
        intra_op_threads: Threads per operator; overrides ``settings``' when given.
        settings: The settings.

    Returns:
        The options.
    """
    if intra_op_threads is not None:
        settings = replace(settings, intra_op_threads=intra_op_threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = _GRAPH_LEVELS[settings.graph_optimization]
    options.log_severity_level = 3  # errors only; the caller reports them
    options.enable_cpu_mem_arena = settings.cpu_mem_arena
    if settings.intra_op_threads is not None:
        options.intra_op_num_threads = settings.intra_op_threads
    if not settings.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def file_precision(path: Path) -> str:
    """The precision recorded in an ONNX file's metadata (``fp32`` if none).

    Reads the file's header and graph without its weights' external data; for
    messages about files onnxruntime could not open.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: the caller's message says so
        return "fp32"
    props = {str(p.key): str(p.value) for p in proto.metadata_props}
    return props.get(PRECISION_METADATA_KEY, "fp32")


def model_precision(session: ort.InferenceSession) -> str:
    """The precision an open model records (``fp32`` when it records none)."""
    metadata = session.get_modelmeta().custom_metadata_map
    return str(metadata.get(PRECISION_METADATA_KEY, "fp32"))


def _load_failure(path: Path, provider: str, error: Exception) -> ModelLoadError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if provider == "CPUExecutionProvider" and file_precision(path) == "fp16":
        return ModelLoadError(
            f"{path}: this onnxruntime ({ort.__version__}) cannot run the fp16 "
            f"model on the CPU ({reason}); run it on a GPU with --provider cuda "
            "(CUDAExecutionProvider), or use the fp32 or int8 model on a CPU"
        )
    return ModelLoadError(f"{path}: not an ONNX model ({reason})")


def open_session(
    path: Path,
    provider: str | None = None,
    intra_op_threads: int | None = None,
    settings: RuntimeSettings = DEFAULT_RUNTIME,
) -> ort.InferenceSession:
    """Open an ONNX model (any precision) with onnxruntime.

    Args:
        path: The ``.onnx`` file.
        provider: As for :func:`choose_provider`.
        intra_op_threads: As for :func:`session_options`.
        settings: As for :func:`session_options`.

    Returns:
        The session.

    Raises:
        ModelLoadError: One line naming the file when it is missing, is not an
            ONNX model onnxruntime can run, or is an fp16 model the CPU provider
            of this onnxruntime cannot run (the line names the provider to use).
    """
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    chosen = choose_provider(provider)
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=session_options(intra_op_threads, settings),
            providers=[chosen],
        )
    except Exception as error:  # onnxruntime raises its own exception types
        raise _load_failure(path, chosen, error) from None
