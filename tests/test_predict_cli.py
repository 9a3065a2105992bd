"""``classifier-predict`` end to end, including its bad-input paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from PIL import Image

from classifier_training.inference.predict import main
from tests.inference_support import (
    IMAGE_SIZE,
    REPO,
    TrainedRun,
    calibrated_copy,
    run_main_without_heavy_imports,
    write_color_image,
)


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """Three colour images, two of them in a folder (one nested deeper)."""
    return {
        "red": write_color_image(tmp_path / "imgs" / "red.png", "red", 0),
        "blue": write_color_image(tmp_path / "imgs" / "sub" / "blue.jpg", "blue", 1),
        "green": write_color_image(tmp_path / "green.png", "green", 2),
    }


def test_text_output(
    color_model: Path,
    images: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = images["red"].parent
    code = main([str(color_model), str(images["green"]), str(folder)])
    assert code == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(path, label) for path, label, _ in lines] == [
        (str(images["green"]), "green"),
        (str(images["red"]), "red"),
        (str(images["blue"]), "blue"),
    ]
    assert all(0.9 < float(conf) <= 1.0 for _, _, conf in lines)


def test_json_lines(
    color_model: Path,
    images: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [str(color_model), str(images["red"]), str(images["green"])]
    assert main([*argv, "--json", "--top-k", "2", "--batch-size", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["red", "green"]
    assert rows[0]["path"] == str(images["red"])
    assert rows[0]["class_id"] == 2
    assert len(rows[0]["top_k"]) == 2
    assert rows[0]["top_k"][0] == {
        "label": "red",
        "class_id": 2,
        "probability": rows[0]["confidence"],
    }


def test_bad_inputs_are_named_and_others_predicted(
    color_model: Path,
    images: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    missing = tmp_path / "missing.png"
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [str(color_model), str(images["red"]), str(fake), str(missing), str(empty)]
    assert main([*argv, str(images["green"])]) == 1
    captured = capsys.readouterr()
    assert [line.split("\t")[1] for line in captured.out.splitlines()] == [
        "red",
        "green",
    ]
    assert f"error: {fake}: not a readable image" in captured.err
    assert f"error: {missing}: file not found" in captured.err
    assert f"error: {empty}: folder holds no image files" in captured.err


def test_missing_mapping_exits_2(
    color_model: Path,
    images: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lonely = Path(shutil.copy(color_model, tmp_path / "model.onnx"))
    assert main([str(lonely), str(images["red"])]) == 2
    assert f"error: {lonely}: no labels_mapping.json found" in capsys.readouterr().err
    mapping = color_model.parent / "labels_mapping.json"
    assert (
        main([str(lonely), str(images["red"]), "--labels-mapping", str(mapping)]) == 0
    )


def onnx_probabilities(
    model: Path, image: Path, size: int, temperature: float = 1.0
) -> npt.NDArray[np.float32]:
    """A second implementation: preprocessing by hand, the exported graph in ORT,
    the softmax of ``logits / temperature`` as another runtime would do it."""
    with Image.open(image) as raw:
        resized = raw.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    batch = ((pixels - mean) / std).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": batch.astype(np.float32)})
    scaled = logits[0] / temperature
    exp = np.exp(scaled - scaled.max())
    return np.asarray(exp / exp.sum())


def test_checkpoint_as_subprocess(trained_run: TrainedRun, tmp_path: Path) -> None:
    trained_run = calibrated_copy(trained_run, tmp_path / "run", 2.5)
    image = sorted((trained_run.data_root / "test" / "images").glob("*.png"))[0]
    result = subprocess.run(
        [
            sys.executable, "-m", "classifier_training.inference.predict",
            str(trained_run.checkpoint), str(image), "--json",
        ],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["path"] == str(image)
    # The checkpoint (torch) against its exported ONNX graph (onnxruntime), with
    # the temperature a deployment reads from labels_mapping.json.
    mapping = json.loads((trained_run.run_dir / "labels_mapping.json").read_text())
    temperature = mapping["temperature"]
    assert temperature == 2.5  # the one the checkpoint carries too
    probs = onnx_probabilities(trained_run.onnx, image, IMAGE_SIZE, temperature)
    names = ["", "23", "7"]  # class_to_idx of the run: sorted label strings
    order = np.argsort(-probs)
    assert row["label"] == names[order[0]]
    assert row["confidence"] == pytest.approx(probs.max(), abs=1e-4)
    assert [(s["label"], s["class_id"]) for s in row["top_k"]] == [
        (names[i], int(i)) for i in order
    ]
    assert [s["probability"] for s in row["top_k"]] == pytest.approx(
        probs[order].tolist(), abs=1e-4
    )


def test_files_that_are_not_models_exit_2_in_one_line(
    color_model: Path,
    images: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copy(color_model.parent / "labels_mapping.json", tmp_path)
    for name, says in (("x.ckpt", "not a checkpoint"), ("x.onnx", "not an ONNX")):
        junk = tmp_path / name
        junk.write_text("junk\n")
        assert main([str(junk), str(images["red"])]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {junk}: {says}")
        assert err.count("\n") == 1  # one line, no traceback


def test_onnx_prediction_imports_neither_torch_nor_lightning(
    color_model: Path, images: dict[str, Path]
) -> None:
    code, heavy, stdout = run_main_without_heavy_imports(
        "classifier_training.inference.predict",
        [str(color_model), str(images["red"])],
    )
    assert (code, heavy) == (0, [])
    assert "\tred\t" in stdout


def _softened_copy(color_model: Path, folder: Path, temperature: float) -> Path:
    """The colour model with a temperature in its mapping (confidences < 1)."""
    folder.mkdir(parents=True)
    shutil.copy(color_model, folder / "model.onnx")
    mapping = json.loads((color_model.parent / "labels_mapping.json").read_text())
    mapping["temperature"] = temperature
    (folder / "labels_mapping.json").write_text(json.dumps(mapping))
    return folder / "model.onnx"


def test_min_confidence_prints_unsure_below_the_threshold(
    color_model: Path,
    images: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = _softened_copy(color_model, tmp_path / "soft", temperature=20.0)
    inputs = [str(p) for p in images.values()]
    assert main([str(model), *inputs]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    confidences = sorted(float(conf) for _, _, conf in lines)
    assert confidences[-1] < 0.9  # the temperature softened them
    middle = (confidences[0] + confidences[-1]) / 2
    assert confidences[0] < middle < confidences[-1]
    for threshold, unsure_count in ((0.0, 0), (middle, None), (1.0, 3)):
        argv = [str(model), *inputs, "--min-confidence", str(threshold)]
        assert main([*argv, "--unsure-label", "??"]) == 0
        out = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
        unsure = [float(c) for _, label, c in out if label == "??"]
        sure = [float(c) for _, label, c in out if label != "??"]
        assert all(c < threshold for c in unsure)
        assert all(c >= threshold for c in sure)
        if unsure_count is not None:
            assert len(unsure) == unsure_count
        else:
            assert 0 < len(unsure) < 3
    assert main([str(model), inputs[0], "--min-confidence", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["label"] == "unsure"
    assert row["unsure"] is True
    assert row["predicted"] in {"red", "green", "blue"}


def test_min_confidence_out_of_range_is_a_usage_error(
    color_model: Path, images: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(color_model), str(images["red"]), "--min-confidence", "1.5"]
    assert main(argv) == 2
    assert "--min-confidence must lie in [0, 1]" in capsys.readouterr().err
