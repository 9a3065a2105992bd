"""``export.precisions`` at the end of training: the files of ``classifier-export``'s
code path and guard, a refusal that keeps the run, bad settings found at start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from classifier_training.config import ConfigError
from classifier_training.core.run_files import (
    EXPORT_SUMMARY_FILE,
    LABELS_MAPPING_FILE,
    MODEL_INT8_ONNX,
    MODEL_ONNX,
)
from classifier_training.training.deployment import (
    ExportSettings,
    export_after_fit,
    prepare_export,
)
from tests.quantization_support import build_colour_deployment


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained small CNN: its data root and ``model.onnx``."""
    return build_colour_deployment(tmp_path_factory.mktemp("colour"))


def _run_folder(colour: tuple[Path, Path], folder: Path) -> Path:
    """A run folder holding the colour model as training leaves it."""
    folder.mkdir(parents=True)
    shutil.copy(colour[1], folder / MODEL_ONNX)
    shutil.copy(colour[1].parent / LABELS_MAPPING_FILE, folder)
    return folder


def _config(**export: Any) -> DictConfig:
    return OmegaConf.create(
        {"export": export, "callbacks": {"onnx_export": {"atol": 1e-4}}}
    )


def test_the_recipes_export_fp32_only_by_default(tmp_path: Path) -> None:
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(config_name="train_demo", overrides=["logging=none"])
    assert cfg.export.precisions == ["fp32"]
    assert (
        ExportSettings.model_validate(OmegaConf.to_container(cfg.export))
        == ExportSettings()
    )
    plan = prepare_export(cfg, tmp_path, tmp_path / "no-data-needed")
    assert plan.inputs is None
    assert export_after_fit(plan, None) == {}


def test_int8_at_the_end_of_training_is_written_and_recorded(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(colour, tmp_path / "run")
    plan = prepare_export(_config(precisions=["int8", "fp32"]), run, colour[0])
    results = export_after_fit(plan, tmp_path / "best.ckpt")
    assert (run / MODEL_INT8_ONNX).is_file()
    assert list(results) == ["fp32", "int8"]
    assert results["int8"]["kept"] is True
    assert results["int8"]["guard"]["split"] == "val"
    assert results["int8"]["guard"]["passed"] is True
    summary = json.loads((run / EXPORT_SUMMARY_FILE).read_text())
    assert summary["int8"] == results["int8"]
    assert summary["fp32"]["source"] == str(tmp_path / "best.ckpt")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"wrote {run / MODEL_INT8_ONNX} [")


def test_a_refusal_at_the_end_of_training_keeps_the_run(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_folder(colour, tmp_path / "run")
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(8):  # constant images break every activation range
        Image.new("RGB", (32, 32), (128, 128, 128)).save(grey / f"grey_{i}.png")
    cfg = _config(
        precisions=["fp32", "int8"], calibration_dir=str(grey), calibration_images=8
    )
    results = export_after_fit(prepare_export(cfg, run, colour[0]), None)
    assert results["int8"]["kept"] is False
    assert results["int8"]["guard"]["passed"] is False
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [MODEL_ONNX, LABELS_MAPPING_FILE, EXPORT_SUMMARY_FILE]
    )
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        f"warning: {run / MODEL_INT8_ONNX}: refused by the accuracy guard, not kept:"
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    ("export", "callbacks", "message"),
    [
        (
            {"precisions": ["fp32", "int9"]},
            {"onnx_export": {}},
            "export.precisions: Value error, 'int9' is not one of fp32, int8, fp16",
        ),
        (
            {"max_drop": -1},
            {"onnx_export": {}},
            "export.max_drop: Input should be greater than or equal to 0",
        ),
        (
            {"precisions": ["int8"]},
            {"onnx_export": None},
            "export.precisions asks for int8, made from model.onnx, and "
            "callbacks.onnx_export is off",
        ),
        ({"precison": ["int8"]}, {}, "export.precison: unknown key"),
    ],
)
def test_bad_export_settings_are_one_line_before_training(
    export: dict[str, Any], callbacks: dict[str, Any], message: str, tmp_path: Path
) -> None:
    cfg = OmegaConf.create({"export": export, "callbacks": callbacks})
    with pytest.raises(ConfigError) as error:
        prepare_export(cfg, tmp_path, tmp_path)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
