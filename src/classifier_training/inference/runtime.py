"""onnxruntime in one place: provider choice, session options, opening a model.

``classifier-export`` (its verification run) and :class:`ONNXClassifier` open
their sessions here, so both read a bad file the same way.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from classifier_training.inference.base import ModelLoadError

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


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


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """Session options: full graph optimisation, quiet, intra-op threads as given.

    Args:
        intra_op_threads: Threads per operator (``None``: onnxruntime's default,
            one per physical core).

    Returns:
        The options.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; the caller reports them
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    return options


def open_session(
    path: Path, provider: str | None = None, intra_op_threads: int | None = None
) -> ort.InferenceSession:
    """Open an ONNX model with onnxruntime.

    Args:
        path: The ``.onnx`` file.
        provider: As for :func:`choose_provider`.
        intra_op_threads: As for :func:`session_options`.

    Returns:
        The session.

    Raises:
        ModelLoadError: One line naming the file when it is missing or is not an
            ONNX model onnxruntime can run.
    """
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    chosen = choose_provider(provider)
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=session_options(intra_op_threads),
            providers=[chosen],
        )
    except Exception as error:  # onnxruntime raises its own exception types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ModelLoadError(f"{path}: not an ONNX model ({reason})") from None
