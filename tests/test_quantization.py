"""``classifier-export --precision int8|fp16``: the files, the accuracy guard, the
consumers that load them, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from classifier_training.core.errors import USER_ERROR_EXIT_CODE
from classifier_training.core.run_files import (
    EXPORT_SUMMARY_FILE,
    LABELS_MAPPING_FILE,
    MODEL_FP16_ONNX,
    MODEL_INT8_ONNX,
    MODEL_ONNX,
    REPORT_FILE,
)
from classifier_training.export import main
from classifier_training.inference import load_classifier
from classifier_training.inference.base import ModelLoadError
from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.inference.onnx_classifier import ONNXClassifier
from classifier_training.inference.predict import main as predict_main
from classifier_training.quantization.cli import GUARD_REFUSED_EXIT_CODE
from classifier_training.report.run import render_run_report
from tests.inference_support import LEARNED_CLASSES, LearnedDemo, TrainedRun
from tests.quantization_support import build_colour_deployment


@pytest.fixture(scope="module")
def colour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained small CNN: its data root and ``model.onnx``."""
    return build_colour_deployment(tmp_path_factory.mktemp("colour"))


def _deployment(colour: tuple[Path, Path], folder: Path) -> Path:
    """A copy of the colour model and its contract (tests write beside it)."""
    folder.mkdir(parents=True)
    shutil.copy(colour[1], folder / MODEL_ONNX)
    shutil.copy(colour[1].parent / LABELS_MAPPING_FILE, folder)
    return folder / MODEL_ONNX


def _constant_images(folder: Path, count: int = 8) -> Path:
    """Uniform grey images: calibrating on them breaks every activation range."""
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (32, 32), (128, 128, 128)).save(folder / f"grey_{i}.png")
    return folder


def _summary(model: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads(
        (model.parent / EXPORT_SUMMARY_FILE).read_text()
    )
    return data


@pytest.fixture(scope="module")
def int8_export(
    colour: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``model.int8.onnx`` and ``model.fp16.onnx`` beside the colour model."""
    model = _deployment(colour, tmp_path_factory.mktemp("int8") / "deploy")
    code = main(
        [
            str(model), "--precision", "int8", "fp16",
            "--data-root", str(colour[0]),
        ]
    )  # fmt: skip
    assert code == 0
    return model


def test_int8_and_fp16_are_written_beside_the_model_and_recorded(
    int8_export: Path,
) -> None:
    folder = int8_export.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            MODEL_ONNX,
            MODEL_INT8_ONNX,
            MODEL_FP16_ONNX,
            LABELS_MAPPING_FILE,
            EXPORT_SUMMARY_FILE,
        ]
    )
    int8 = onnx.load(str(folder / MODEL_INT8_ONNX))
    # QDQ: float operators fed by DequantizeLinear, no integer operators.
    produced_by = {out: node for node in int8.graph.node for out in node.output}
    convs = [node for node in int8.graph.node if node.op_type == "Conv"]
    assert len(convs) == 2
    for conv in convs:
        assert [produced_by[i].op_type for i in conv.input[:2]] == [
            "DequantizeLinear",
            "DequantizeLinear",
        ]
    assert not any(node.op_type.startswith("QLinear") for node in int8.graph.node)
    weights = {t.name: t for t in int8.graph.initializer}
    for conv in convs:  # per-channel: one weight scale per output channel
        scale = weights[produced_by[conv.input[1]].input[1]]
        assert list(scale.dims) == [
            weights[produced_by[conv.input[1]].input[0]].dims[0]
        ]
    fp16 = onnx.load(str(folder / MODEL_FP16_ONNX))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    summary = _summary(int8_export)
    assert set(summary) == {"int8", "fp16"}
    for precision in ("int8", "fp16"):
        guard = summary[precision]["guard"]
        assert isinstance(guard, dict)
        assert summary[precision]["kept"] is True
        assert guard["split"] == "val"
        assert guard["rows"] == 64
        assert guard["top1_fp32"] == 1.0
        assert guard["drop_points"] <= 0.5
        assert guard["agreement"] >= 0.98
    scheme = summary["int8"]["scheme"]
    assert isinstance(scheme, dict)
    assert scheme["weight_type"] == "int8"


def test_every_consumer_loads_the_reduced_precision_files(
    int8_export: Path,
    colour: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = int8_export.parent
    images = sorted((colour[0] / "test" / "images").glob("*.png"))[::8]
    reference = load_classifier(int8_export).predict(images)
    for name, precision in ((MODEL_INT8_ONNX, "int8"), (MODEL_FP16_ONNX, "fp16")):
        classifier = load_classifier(folder / name)
        assert isinstance(classifier, ONNXClassifier)
        assert classifier.precision == precision
        assert classifier.mapping_path == folder / LABELS_MAPPING_FILE
        got = classifier.predict(images)
        assert [p.label for p in got] == [p.label for p in reference]
        capsys.readouterr()
        assert predict_main([str(folder / name), *map(str, images)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split("\t")[1] for line in lines] == [
            p.display_label for p in reference
        ]


def test_evaluate_of_the_int8_file_reproduces_the_guard(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    # The tiny run's model is far from perfect, so its top-1 is not trivially 1.
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    model = run / MODEL_ONNX
    assert main([str(model), "--precision", "int8", "--max-drop", "100"]) == 0
    guard = _summary(model)["int8"]["guard"]
    assert isinstance(guard, dict)
    out = tmp_path / "eval"
    code = evaluate_main(
        [
            "--model", str(run / MODEL_INT8_ONNX),
            "--data-root", str(trained_run.data_root),
            "--split", "val", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_rows"] == guard["rows"] == 12
    assert summary["top1"] == guard["top1"]
    assert 0 < guard["top1"] < 1


def test_the_guard_refuses_a_broken_quantization(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _deployment(colour, tmp_path / "deploy")
    stale = model.parent / MODEL_INT8_ONNX
    stale.write_bytes(b"an int8 file of other weights")
    grey = _constant_images(tmp_path / "grey")
    code = main(
        [
            str(model), "--precision", "int8",
            "--data-root", str(colour[0]),
            "--calibration-dir", str(grey), "--calibration-images", "8",
        ]
    )  # fmt: skip
    assert code == GUARD_REFUSED_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {stale}: refused by the accuracy guard")
    assert "drop" in err[0]
    assert "same top-1 answer" in err[0]
    assert not stale.exists()  # neither the new file nor the stale one is kept
    assert sorted(p.name for p in model.parent.iterdir()) == sorted(
        [MODEL_ONNX, LABELS_MAPPING_FILE, EXPORT_SUMMARY_FILE]
    )
    record = _summary(model)["int8"]
    guard = record["guard"]
    assert isinstance(guard, dict)
    assert record["kept"] is False
    assert guard["passed"] is False
    assert guard["drop_points"] > 0.5


def test_a_checkpoint_exports_fp32_and_the_others_with_one_command(
    trained_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy" / MODEL_ONNX
    code = main(
        [
            str(trained_run.checkpoint), "--out", str(out),
            "--precision", "fp16", "fp32",
            "--data-root", str(trained_run.data_root),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote {out} and ")  # fp32 first, whatever order
    assert printed[1].startswith(f"wrote {out.parent / MODEL_FP16_ONNX}: fp16 vs")
    summary = _summary(out)
    assert list(summary) == ["fp32", "fp16"]
    assert summary["fp32"]["source"] == str(trained_run.checkpoint)


def test_the_run_report_shows_the_guard(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    (run / EXPORT_SUMMARY_FILE).unlink(missing_ok=True)
    assert "only model.onnx (fp32)" in render_run_report(run)
    code = main(
        [str(run / MODEL_ONNX), "--precision", "fp16"]
    )  # data root: the run's config
    assert code == 0
    page = (run / REPORT_FILE).read_text()  # rebuilt by the export
    deployment = page.split('<section id="deployment">')[1].split("</section>")[0]
    guard = _summary(run / MODEL_ONNX)["fp16"]["guard"]
    assert isinstance(guard, dict)
    assert MODEL_FP16_ONNX in deployment
    assert "refused" not in deployment
    assert f"{100 * guard['agreement']:.2f}%" in deployment
    assert f"{guard['drop_points']:.2f}" in deployment


# -- bad input ---------------------------------------------------------------------
def test_unreadable_calibration_images_are_skipped_counted_and_named(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _deployment(colour, tmp_path / "deploy")
    folder = tmp_path / "calib"
    shutil.copytree(colour[0] / "train" / "images", folder)
    broken = [folder / "broken_a.png", folder / "broken_b.jpg"]
    for path in broken:
        path.write_text("not an image")
    code = main(
        [
            str(model), "--precision", "int8",
            "--data-root", str(colour[0]),
            "--calibration-dir", str(folder),
            "--calibration-images", "100",
        ]
    )  # fmt: skip
    assert code == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 2
    assert warnings[0].startswith(
        f"warning: {folder}: skipped 2 unreadable calibration image(s): "
    )
    assert warnings[1] == (
        f"warning: {folder}: calibrating on 96 readable image(s), fewer than the "
        "100 asked"
    )
    for path in broken:
        assert str(path) in warnings[0]
    calibration = _summary(model)["int8"]["calibration"]
    assert isinstance(calibration, dict)
    assert calibration["skipped"]["count"] == 2
    assert calibration["images"] == 96  # every readable train image


def test_a_calibration_folder_without_readable_images_is_one_line(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _deployment(colour, tmp_path / "deploy")
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "a.png").write_text("not an image")
    code = main(
        [
            str(model), "--precision", "int8",
            "--data-root", str(colour[0]),
            "--calibration-dir", str(folder),
        ]
    )  # fmt: skip
    assert code == USER_ERROR_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {folder}: none of 1 image(s) could be read")
    assert not (model.parent / MODEL_INT8_ONNX).exists()


def test_an_onnx_file_without_contract_is_one_line(
    colour: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "alone" / MODEL_ONNX
    model.parent.mkdir()
    shutil.copy(colour[1], model)
    code = main(
        [
            str(model), "--precision", "int8",
            "--data-root", str(colour[0]),
        ]
    )  # fmt: skip
    assert code == USER_ERROR_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {model}: no deployment contract")
    assert sorted(p.name for p in model.parent.iterdir()) == [MODEL_ONNX]


@pytest.mark.parametrize("value", ["int4", "FP16", "bf16"])
def test_a_precision_outside_the_list_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out = tmp_path / MODEL_ONNX
    code = main([str(tmp_path / "x.ckpt"), "--out", str(out), "--precision", value])
    assert code == USER_ERROR_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --precision {value!r} is not one of fp32, int8, fp16"]
    assert not out.exists()


def test_no_data_root_is_one_line_before_any_export(
    trained_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A checkpoint in a run folder has its data root in the run's config (see
    # the run report's test); a copy elsewhere does not.
    lonely = tmp_path / "lonely.ckpt"
    shutil.copy(trained_run.checkpoint, lonely)
    out2 = tmp_path / "deploy2" / MODEL_ONNX
    code = main([str(lonely), "--out", str(out2), "--precision", "int8"])
    assert code == USER_ERROR_EXIT_CODE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--data-root is needed for int8" in err[0]
    assert not out2.parent.exists()


def test_an_fp16_model_the_cpu_cannot_run_names_the_provider(
    int8_export: Path, tmp_path: Path
) -> None:
    fp16 = onnx.load(str(int8_export.parent / MODEL_FP16_ONNX))
    fp16.graph.node[0].op_type = "NoSuchKernel"  # what a missing fp16 kernel gives
    path = tmp_path / MODEL_FP16_ONNX
    onnx.save(fp16, str(path))
    shutil.copy(int8_export.parent / LABELS_MAPPING_FILE, tmp_path)
    with pytest.raises(ModelLoadError) as caught:
        load_classifier(path, provider="cpu")
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{path}: this onnxruntime")
    assert "--provider cuda (CUDAExecutionProvider)" in message


def test_reduced_precision_logits_stay_float32(int8_export: Path) -> None:
    batch = np.zeros((2, 3, 32, 32), np.float32)
    for name in (MODEL_INT8_ONNX, MODEL_FP16_ONNX):
        classifier = ONNXClassifier(int8_export.parent / name)
        assert classifier.predict_logits(batch).dtype == np.float32


@pytest.mark.slow
def test_int8_of_a_trained_demo_agrees_with_fp32_on_the_test_crops(
    learned_demo: LearnedDemo,
) -> None:
    """The demo trained with ``export.precisions=[fp32,int8]``: its int8 file is
    kept by the guard and answers like fp32 on the test crops."""
    run = learned_demo.run_dir
    record = learned_demo.metrics["export"]["int8"]
    assert record["kept"] is True
    assert record["guard"]["split"] == "val"
    assert record["guard"]["agreement"] >= 0.98
    assert record["guard"]["rows"] == 40 * len(LEARNED_CLASSES)  # eval share 0.2
    assert record == _summary(run / MODEL_ONNX)["int8"]
    assert "model.int8.onnx" in (run / REPORT_FILE).read_text()
    # Agreement is a property of trained models: near-tied logits of a model that
    # has not learned flip under any rounding.
    assert learned_demo.metrics["test"]["acc_top1"] >= 0.8, "the demo did not learn"
    crops = sorted((learned_demo.data_root / "test" / "images").glob("*.jpg"))
    assert len(crops) == 40 * len(LEARNED_CLASSES)
    fp32 = load_classifier(run / MODEL_ONNX).predict(crops, top_k=1)
    int8 = load_classifier(run / MODEL_INT8_ONNX).predict(crops, top_k=1)
    same = sum(a.class_id == b.class_id for a, b in zip(fp32, int8, strict=True))
    assert same / len(crops) >= 0.98
