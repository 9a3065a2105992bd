"""One reduced-precision file from a verified ``model.onnx``: write, guard, keep.

:func:`gather_inputs` reads everything the checks need first (data root, the
guard's split, the calibration candidates), so bad input is reported before any
slow step. :func:`export_precision` then writes ``model.<precision>.onnx`` under
a temporary name, runs the accuracy guard on it against ``model.onnx`` and
renames it into place only when the guard passes; a refused file is not kept
(and an older file of that precision is removed: it belonged to other weights
or failed the same check). Either way the figures go to ``export_summary.json``
beside the model, which the run report shows.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort
import yaml

from classifier_training.core.contract import find_labels_mapping, run_folder
from classifier_training.core.cpu_features import cpu_features
from classifier_training.core.errors import ClassifierError
from classifier_training.core.io import atomic_path, atomic_write_json
from classifier_training.core.readers import DataError, Sample, find_splits, read_split
from classifier_training.core.run_files import (
    CONFIG_FILE,
    EXPORT_SUMMARY_FILE,
    precision_file,
)
from classifier_training.inference.base import ModelLoadError
from classifier_training.inference.onnx_classifier import ONNXClassifier
from classifier_training.quantization.calibration_set import (
    DEFAULT_CALIBRATION_IMAGES,
    calibration_files,
    load_calibration_set,
)
from classifier_training.quantization.convert import write_fp16, write_int8
from classifier_training.quantization.guard import (
    DEFAULT_MAX_DROP,
    GuardResult,
    run_guard,
)
from classifier_training.quantization.schemes import (
    DEFAULT_CALIBRATION_METHOD,
    int8_scheme,
)

#: Precisions written from ``model.onnx`` (fp32 is ``model.onnx`` itself).
REDUCED_PRECISIONS = ("int8", "fp16")


class GuardRefusedError(ClassifierError):
    """The accuracy guard refused a file (the message holds the figures).

    Attributes:
        record: The refused file's entry in ``export_summary.json``.
    """

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class PrecisionOptions:
    """How reduced-precision files are made and checked.

    Attributes:
        data_root: Dataset root (train split: calibration; guard split: guard);
            ``None``: the run's ``data.data_root`` (its ``.hydra/config.yaml``).
        guard_split: The split the guard evaluates (``val`` or ``test``...).
        max_drop: Largest top-1 drop kept, percentage points.
        calibration_images: Images int8 ranges are calibrated on.
        calibration_method: ``minmax``, ``entropy`` or ``percentile``.
        calibration_dir: A folder of images to calibrate on instead of the train
            split.
        int8_target: ``auto`` (this CPU), ``x86-vnni``, ``x86`` or ``arm``.
        provider: onnxruntime provider of the guard's runs (default: CUDA when
            available, else CPU).
        batch_size: Images per network call in the guard.
    """

    data_root: Path | None = None
    guard_split: str = "val"
    max_drop: float = DEFAULT_MAX_DROP
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    calibration_dir: Path | None = None
    int8_target: str = "auto"
    provider: str | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class PrecisionInputs:
    """What the checks read, gathered and validated before any slow step.

    Attributes:
        data_root: The dataset root used.
        guard_samples: The guard split's rows.
        calibration_source: Where calibration images come from.
        calibration_candidates: Their files (empty when no int8 is asked for).
    """

    data_root: Path
    guard_samples: list[Sample]
    calibration_source: Path | None
    calibration_candidates: list[Path]


@dataclass(frozen=True)
class PrecisionExport:
    """A kept file and its record.

    Attributes:
        path: The file written.
        guard: The guard's figures.
        record: Its entry in ``export_summary.json``.
    """

    path: Path
    guard: GuardResult
    record: dict[str, Any]


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def run_data_root(model_path: Path) -> Path | None:
    """``data.data_root`` of the run a model belongs to (``None``: not recorded)."""
    config = run_folder(model_path) / CONFIG_FILE
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        root = data["data"]["data_root"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return Path(str(root)) if root else None


def gather_inputs(
    precisions: list[str], options: PrecisionOptions, model_path: Path
) -> PrecisionInputs | None:
    """Validate and read the data the guard and the calibration need.

    Args:
        precisions: The precisions asked for.
        options: The options.
        model_path: Where ``model.onnx`` is (or will be): its run folder's
            config names the data root when ``options.data_root`` is ``None``.

    Returns:
        The inputs, or ``None`` when only fp32 is asked for.

    Raises:
        DataError: Naming the folder that is missing or unusable.
    """
    if not set(precisions) & set(REDUCED_PRECISIONS):
        return None
    data_root = options.data_root or run_data_root(model_path)
    if data_root is None:
        raise DataError(
            f"{model_path}: --data-root is needed for "
            f"{', '.join(p for p in precisions if p != 'fp32')} (the accuracy guard "
            "evaluates the split --guard-split, int8 calibrates on train images), "
            "and no run config beside the model names one"
        )
    split_dir = find_splits(data_root)[options.guard_split]
    if split_dir is None:
        raise DataError(
            f"{data_root}: no {options.guard_split} split for the accuracy guard; "
            "choose another with --guard-split"
        )
    samples = read_split(split_dir)
    if not samples:
        raise DataError(f"{split_dir}: no rows for the accuracy guard")
    source: Path | None = None
    candidates: list[Path] = []
    if "int8" in precisions:
        source, candidates = calibration_files(data_root, options.calibration_dir)
    return PrecisionInputs(data_root, samples, source, candidates)


def fp32_reference(model_path: Path, provider: str | None = None) -> ONNXClassifier:
    """Open the fp32 model a reduced-precision file is made from.

    Raises:
        ModelLoadError: One line when it has no ``labels_mapping.json`` beside it
            (or in its run folder), cannot be opened, or is not fp32.
    """
    try:
        mapping = find_labels_mapping(model_path)
    except ClassifierError:
        raise ModelLoadError(
            f"{model_path}: no deployment contract (labels_mapping.json) beside it "
            "or in its run folder; classifier-export needs the one that was "
            "written with this model"
        ) from None
    reference = ONNXClassifier(model_path, mapping, provider=provider)
    if reference.precision != "fp32":
        raise ModelLoadError(
            f"{model_path}: a {reference.precision} model; reduced-precision "
            "files are made from the fp32 model.onnx"
        )
    return reference


def _write(
    precision: str,
    reference: ONNXClassifier,
    tmp: Path,
    options: PrecisionOptions,
    inputs: PrecisionInputs,
    report: Callable[[str], None],
) -> dict[str, Any]:
    if precision == "fp16":
        write_fp16(reference.model_path, tmp)
        return {}
    if inputs.calibration_source is None:
        raise ValueError("int8 needs calibration images (gather_inputs with int8)")
    calibration = load_calibration_set(
        inputs.calibration_source,
        inputs.calibration_candidates,
        reference.preprocessor,
        options.calibration_images,
    )
    skipped = calibration.skipped_line()
    if skipped:
        report(skipped)
    if len(calibration.files) < options.calibration_images:
        report(
            f"{calibration.source}: calibrating on {len(calibration.files)} "
            f"readable image(s), fewer than the {options.calibration_images} asked"
        )
    scheme = int8_scheme(options.int8_target)
    write_int8(
        reference.model_path,
        tmp,
        calibration.images,
        reference.contract.input_name,
        scheme,
        options.calibration_method,
    )
    record = {
        "scheme": scheme.to_json(),
        "calibration": {"method": options.calibration_method, **calibration.to_json()},
    }
    return record


def _record_summary(model_path: Path, precision: str, entry: dict[str, Any]) -> Path:
    path = model_path.parent / EXPORT_SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            summary = {}
    except (OSError, ValueError):
        summary = {}
    summary[precision] = entry
    return atomic_write_json(path, summary)


def record_fp32(model_path: Path, **facts: Any) -> Path:
    """Record the fp32 model in ``export_summary.json`` (replacing older entries
    of the reduced precisions: they belonged to the previous ``model.onnx``)."""
    path = model_path.parent / EXPORT_SUMMARY_FILE
    entry = {
        "file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        **facts,
    }
    return atomic_write_json(path, {"fp32": entry})


def export_precision(
    model_path: Path,
    precision: str,
    options: PrecisionOptions,
    inputs: PrecisionInputs,
    report: Callable[[str], None] = warn,
) -> PrecisionExport:
    """Write ``model.<precision>.onnx`` beside ``model_path`` if the guard allows.

    Args:
        model_path: The verified fp32 model, with its ``labels_mapping.json``.
        precision: ``int8`` or ``fp16``.
        options: How to make and check it.
        inputs: From :func:`gather_inputs`.
        report: Where warnings go (skipped calibration images).

    Returns:
        The kept file and its record.

    Raises:
        GuardRefusedError: The top-1 drop exceeds ``options.max_drop``; no file
            of this precision is left beside the model.
        ModelLoadError: ``model_path`` has no contract beside it, or is not fp32.
    """
    if precision not in REDUCED_PRECISIONS:
        raise ValueError(f"precision must be one of {REDUCED_PRECISIONS}")
    reference = fp32_reference(model_path, options.provider)
    out = model_path.parent / precision_file(model_path.name, precision)
    with atomic_path(out) as tmp:
        extra = _write(precision, reference, tmp, options, inputs, report)
        candidate = ONNXClassifier(tmp, reference.mapping_path, options.provider)
        guard = run_guard(
            reference,
            candidate,
            inputs.guard_samples,
            options.guard_split,
            precision,
            options.max_drop,
            options.batch_size,
        )
        record = {
            "file": out.name,
            "kept": guard.passed,
            "size_bytes": tmp.stat().st_size,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "provider": candidate.provider,
            "onnxruntime": ort.__version__,
            "cpu": cpu_features().to_json(),
            **extra,
            "guard": guard.to_json(),
        }
        _record_summary(model_path, precision, record)
        if not guard.passed:
            out.unlink(missing_ok=True)
            raise GuardRefusedError(
                f"{out}: refused by the accuracy guard, not kept: {guard.describe()}",
                record,
            )
    return PrecisionExport(out, guard, record)


def describe_export(result: PrecisionExport) -> str:
    """One line about a kept file: scheme and calibration (int8), guard figures."""
    how = ""
    if "scheme" in result.record:
        calibration = result.record["calibration"]
        how = (
            f" [{result.record['scheme']['activation_type']} activations, "
            f"reduce_range {result.record['scheme']['reduce_range']}, target "
            f"{result.record['scheme']['target']}; {calibration['images']} "
            f"calibration images, {calibration['method']}]"
        )
    return f"wrote {result.path}{how}: {result.guard.describe()}"
