"""``export.precisions``: int8 / fp16 copies of the run's ``model.onnx``.

At the end of training the run's ``model.onnx`` (written and verified by the
``onnx_export`` callback) is the fp32 reference; each reduced precision asked
for is written beside it through
:func:`~classifier_training.quantization.export_precision`, the code path and
accuracy guard of ``classifier-export --precision``: int8 calibrated on the
run's train images, both checked against fp32 on the validation split. A file
the guard refuses is not kept; the run still ends normally with its fp32 model,
the refusal printed as one line and recorded in ``metrics.json``
(``export``), ``export_summary.json`` and ``report.html``.

Everything the checks read (the settings, the guard's split, the calibration
images) is validated before fitting starts (:func:`prepare_export`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from classifier_training.config import ConfigError, format_validation_error
from classifier_training.core.errors import ClassifierError
from classifier_training.core.readers import SPLITS, canonical_split
from classifier_training.core.run_files import MODEL_ONNX, MODEL_PRECISIONS
from classifier_training.quantization import (
    REDUCED_PRECISIONS,
    GuardRefusedError,
    PrecisionOptions,
    export_precision,
    gather_inputs,
)
from classifier_training.quantization.calibration_set import (
    DEFAULT_CALIBRATION_IMAGES,
)
from classifier_training.quantization.guard import DEFAULT_MAX_DROP
from classifier_training.quantization.pipeline import (
    PrecisionInputs,
    describe_export,
    record_fp32,
)
from classifier_training.quantization.schemes import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_METHOD,
    INT8_TARGETS,
)


class ExportSettings(BaseModel):
    """The ``export`` config node: deployment files written at the end of training.

    Attributes:
        precisions: ``fp32`` (``model.onnx``, always written: the reference),
            ``int8``, ``fp16``.
        guard_split: The split the accuracy guard evaluates.
        max_drop: Largest top-1 drop (percentage points) a kept file may show.
        calibration_images: int8: train images its ranges are calibrated on.
        calibration_method: int8: ``minmax``, ``entropy`` or ``percentile``.
        int8_target: int8: the CPU it will run on (``auto``: this one).
        calibration_dir: int8: a folder of images (e.g. crops from the cameras
            it will see) to calibrate on instead of the train split.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    precisions: list[str] = Field(default_factory=lambda: ["fp32"])
    guard_split: str = "val"
    max_drop: float = Field(default=DEFAULT_MAX_DROP, ge=0)
    calibration_images: int = Field(default=DEFAULT_CALIBRATION_IMAGES, ge=1)
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    int8_target: str = "auto"
    calibration_dir: Path | None = None

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, values: list[str]) -> list[str]:
        wrong = [v for v in values if v not in MODEL_PRECISIONS]
        if wrong:
            raise ValueError(
                f"{wrong[0]!r} is not one of {', '.join(MODEL_PRECISIONS)}"
            )
        return [p for p in MODEL_PRECISIONS if p in values]

    @field_validator("guard_split")
    @classmethod
    def _known_split(cls, value: str) -> str:
        split = canonical_split(value)
        if split not in SPLITS or split == "train":
            raise ValueError("the guard evaluates val or test")
        return split

    @field_validator("calibration_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in CALIBRATION_METHODS:
            raise ValueError(f"one of {', '.join(CALIBRATION_METHODS)}")
        return value

    @field_validator("int8_target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in INT8_TARGETS:
            raise ValueError(f"one of {', '.join(INT8_TARGETS)}")
        return value

    @property
    def reduced(self) -> list[str]:
        """The precisions written from ``model.onnx`` (int8, fp16)."""
        return [p for p in self.precisions if p in REDUCED_PRECISIONS]


@dataclass(frozen=True)
class ExportPlan:
    """What the end of training writes, checked before fitting.

    Attributes:
        settings: The ``export`` node.
        options: Calibration and guard options.
        inputs: The guard's rows and calibration images (``None``: fp32 only).
        model_path: The run's ``model.onnx``.
    """

    settings: ExportSettings
    options: PrecisionOptions
    inputs: PrecisionInputs | None
    model_path: Path


def export_settings(cfg: DictConfig) -> ExportSettings:
    """The ``export`` node validated (absent: fp32 only).

    Raises:
        ConfigError: One line per bad key, naming ``export.<key>``.
    """
    node = cfg.get("export")
    values = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    try:
        return ExportSettings.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, "export")) from None


def prepare_export(cfg: DictConfig, output_dir: Path, data_root: Path) -> ExportPlan:
    """Validate ``export`` and read what its checks need, before fitting.

    Args:
        cfg: The composed config.
        output_dir: The run folder (``model.onnx`` is written there).
        data_root: The run's dataset root.

    Returns:
        The plan.

    Raises:
        ConfigError: A bad ``export`` key, or int8/fp16 without the ONNX export.
        DataError: The guard's split or the calibration images are unusable.
    """
    settings = export_settings(cfg)
    if settings.reduced and (cfg.get("callbacks") or {}).get("onnx_export") is None:
        raise ConfigError(
            f"export.precisions asks for {', '.join(settings.reduced)}, made from "
            "model.onnx, and callbacks.onnx_export is off"
        )
    options = PrecisionOptions(
        data_root=data_root,
        guard_split=settings.guard_split,
        max_drop=settings.max_drop,
        calibration_images=settings.calibration_images,
        calibration_method=settings.calibration_method,
        int8_target=settings.int8_target,
        calibration_dir=settings.calibration_dir,
    )
    model_path = output_dir / MODEL_ONNX
    inputs = gather_inputs(settings.precisions, options, model_path)
    return ExportPlan(settings, options, inputs, model_path)


def export_after_fit(plan: ExportPlan, source: Path | None) -> dict[str, Any]:
    """Write the reduced precisions of ``plan`` beside the run's ``model.onnx``.

    A refusal by the guard, or any other input problem of one file, is printed
    as one line and recorded; the run and its fp32 model are kept.

    Args:
        plan: From :func:`prepare_export`.
        source: The checkpoint ``model.onnx`` was exported from.

    Returns:
        Per precision its record (``export_summary.json``'s entry, ``kept``
        included; ``error`` when it could not be made); empty when only fp32 is
        asked for.
    """
    if plan.inputs is None:
        return {}
    if not plan.model_path.is_file():
        line = (
            f"{plan.model_path}: not written, so no {', '.join(plan.settings.reduced)}"
        )
        print(f"warning: {line}", file=sys.stderr)
        return {p: {"kept": False, "error": line} for p in plan.settings.reduced}
    record_fp32(plan.model_path, source=str(source) if source else None)
    results: dict[str, Any] = {"fp32": {"file": plan.model_path.name, "kept": True}}
    for precision in plan.settings.reduced:
        try:
            written = export_precision(
                plan.model_path, precision, plan.options, plan.inputs
            )
        except GuardRefusedError as error:
            print(f"warning: {error}", file=sys.stderr)
            results[precision] = error.record
            continue
        except ClassifierError as error:
            print(f"warning: {precision} not written: {error}", file=sys.stderr)
            results[precision] = {"kept": False, "error": str(error)}
            continue
        print(describe_export(written))
        results[precision] = written.record
    return results
