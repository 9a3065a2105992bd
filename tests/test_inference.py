"""ONNX and checkpoint classifiers on a real tiny model; preprocessing parity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from torchvision import models as tv_models

from classifier_training.config import DataModuleConfig
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.core.readers import find_splits, read_split
from classifier_training.inference import (
    CheckpointClassifier,
    ModelLoadError,
    ONNXClassifier,
    Prediction,
    Preprocessor,
    load_classifier,
)
from classifier_training.inference.evaluate import evaluate_samples
from classifier_training.inference.onnx_classifier import choose_provider
from classifier_training.labels_mapping import (
    mapping_candidates,
    read_labels_mapping,
    write_labels_mapping,
)
from tests.helpers import class_image, make_jsonl_dataset
from tests.inference_support import REPO, TrainedRun


def _test_images(run: TrainedRun) -> list[Path]:
    return sorted((run.data_root / "test" / "images").glob("*.png"))


# -- preprocessing ------------------------------------------------------------------
def _awkward_valid_images(root: Path) -> None:
    """Make valid images non-square, grayscale, palette and EXIF-rotated."""
    images = sorted((root / "valid" / "images").glob("*.png"))
    class_image(0, 10, size=24).resize((40, 22)).save(images[0])
    class_image(1, 11, size=24).resize((18, 37)).convert("L").save(images[1])
    class_image(2, 12, size=24).convert("P").save(images[2])
    rotated = class_image(0, 13, size=24).resize((30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    rotated.save(images[3], exif=exif)


@pytest.mark.parametrize("mode", ["squash", "letterbox"])
def test_preprocessing_from_mapping_matches_datamodule(
    tmp_path: Path, mode: str
) -> None:
    root = make_jsonl_dataset(tmp_path / "data", per_class=2, eval_per_class=2)
    _awkward_valid_images(root)
    config = DataModuleConfig(
        data_root=root,
        image_size=28,
        resize_mode=mode,
        num_workers=0,  # type: ignore[arg-type]
    )
    datamodule = ImageFolderDataModule(config, arch="resnet18")
    datamodule.setup()
    mapping_file = write_labels_mapping(tmp_path, datamodule.class_to_idx, config)
    # Only the JSON file is used from here on: the deployment's view.
    preprocessor = Preprocessor.from_mapping(read_labels_mapping(mapping_file))
    dataset = datamodule.datasets["valid"]
    assert len(dataset) == 6
    for index, sample in enumerate(dataset.samples):
        expected = dataset[index]["images"]
        assert isinstance(expected, torch.Tensor)
        actual = preprocessor(sample.image)
        assert actual.dtype == np.float32
        assert actual.shape == (3, 28, 28)
        np.testing.assert_allclose(actual, expected.numpy(), atol=1e-6, rtol=0)


def test_preprocessor_batch_and_pil_input(tmp_path: Path) -> None:
    config = DataModuleConfig(data_root=tmp_path, image_size=16)
    write_labels_mapping(tmp_path, {"a": 0, "b": 1}, config)
    pre = Preprocessor.from_mapping(
        read_labels_mapping(tmp_path / "labels_mapping.json")
    )
    image = class_image(0, 0, size=20)
    path = tmp_path / "x.png"
    image.save(path)
    batch = pre.batch([path, image])
    assert batch.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(batch[0], batch[1])
    assert pre.batch([]).shape == (0, 3, 16, 16)


def test_unsupported_preprocessing_is_named(tmp_path: Path) -> None:
    config = DataModuleConfig(data_root=tmp_path, image_size=16)
    path = write_labels_mapping(tmp_path, {"a": 0, "b": 1}, config)
    mapping = read_labels_mapping(path)
    mapping["preprocessing"]["resize"]["interpolation"] = "bicubic"
    with pytest.raises(ValueError, match=r"labels_mapping\.json.*bicubic"):
        Preprocessor.from_mapping(mapping, str(path))


# -- classifiers on a trained, exported model ---------------------------------------
def test_onnx_and_checkpoint_classifiers_agree(trained_run: TrainedRun) -> None:
    images = _test_images(trained_run)
    onnx = ONNXClassifier(trained_run.onnx)
    ckpt = CheckpointClassifier(trained_run.checkpoint)
    assert onnx.class_names == ckpt.class_names == ["", "23", "7"]
    assert ckpt.model_class.endswith("ResNet18ClassificationModel")
    batch = onnx.preprocessor.batch(images)
    np.testing.assert_allclose(
        onnx.predict_proba(batch), ckpt.predict_proba(batch), atol=1e-4, rtol=0
    )
    by_onnx, by_ckpt = onnx.predict(images, top_k=2), ckpt.predict(images, top_k=2)
    assert [p.label for p in by_onnx] == [p.label for p in by_ckpt]
    for a, b in zip(by_onnx, by_ckpt, strict=True):
        assert a.source == b.source
        assert abs(a.confidence - b.confidence) < 1e-4
        assert [s.class_id for s in a.top_k] == [s.class_id for s in b.top_k]


def test_prediction_interface(trained_run: TrainedRun) -> None:
    classifier = ONNXClassifier(trained_run.onnx, provider="cpu")
    assert classifier.provider == "CPUExecutionProvider"
    images = _test_images(trained_run)
    single = classifier.predict(images[0])
    assert isinstance(single, Prediction)
    assert single.source == str(images[0])
    assert len(single.top_k) == 3  # top-5 capped at 3 classes
    assert single.top_k[0].class_id == single.class_id
    assert single.label == classifier.class_names[single.class_id]
    assert abs(sum(s.probability for s in single.top_k) - 1.0) < 1e-6
    probs = [s.probability for s in single.top_k]
    assert probs == sorted(probs, reverse=True)
    from_pil = classifier.predict(Image.open(images[0]), top_k=1)
    assert from_pil.class_id == single.class_id
    assert from_pil.source is None
    assert len(from_pil.top_k) == 1
    # Dynamic batch: batch size does not change results.
    one_by_one = classifier.predict(images, batch_size=1)
    together = classifier.predict(images, batch_size=64)
    for a, b in zip(one_by_one, together, strict=True):
        assert a.class_id == b.class_id
        assert abs(a.confidence - b.confidence) < 1e-5
    row = json.loads(json.dumps(single.to_dict()))
    assert (row["path"], row["label"]) == (str(images[0]), single.label)
    assert [s["class_id"] for s in row["top_k"]] == [s.class_id for s in single.top_k]


def test_onnx_path_runs_without_torch(color_model: Path, tmp_path: Path) -> None:
    """A deployment needs onnxruntime, numpy and Pillow: torch is never imported."""
    image = tmp_path / "red.png"
    class_image(0, 0, size=20).save(image)
    script = (
        "import sys\n"
        "from classifier_training.inference import ONNXClassifier\n"
        f"p = ONNXClassifier({str(color_model)!r}).predict({str(image)!r})\n"
        "heavy = {'torch', 'torchvision', 'lightning'} & set(sys.modules)\n"
        "print(p.label, sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.split()
    assert out == ["red", "[]"]


def test_choose_provider() -> None:
    assert choose_provider("CPUExecutionProvider") == "CPUExecutionProvider"
    assert choose_provider("cpu") == "CPUExecutionProvider"
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert choose_provider() == (
        "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    )
    with pytest.raises(ModelLoadError, match="not available"):
        choose_provider("nonexistent")


def test_evaluated_onnx_matches_training_test_accuracy(
    trained_run: TrainedRun,
) -> None:
    split_dir = find_splits(trained_run.data_root)["test"]
    assert split_dir is not None
    evaluation = evaluate_samples(
        ONNXClassifier(trained_run.onnx), read_split(split_dir)
    )
    test_metrics = trained_run.metrics["test"]
    assert isinstance(test_metrics, dict)
    reported = test_metrics["acc_top1"]
    assert len(evaluation.samples) == 12
    assert abs(evaluation.metrics()["top1"] - reported) <= 0.001


# -- loading errors ------------------------------------------------------------------
def test_missing_mapping_is_named(trained_run: TrainedRun, tmp_path: Path) -> None:
    lonely = shutil.copy(trained_run.onnx, tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: no labels_mapping\.json"):
        ONNXClassifier(lonely)
    # A checkpoint of a run carries its mapping: a copy on its own still works.
    ckpt = shutil.copy(trained_run.checkpoint, tmp_path / "best.ckpt")
    assert load_classifier(ckpt).class_names == ["", "23", "7"]
    # One without it (an older checkpoint) needs the run's labels_mapping.json.
    bare = torch.load(ckpt, weights_only=True)
    del bare["labels_mapping"]
    torch.save(bare, ckpt)
    with pytest.raises(ModelLoadError, match=r"best\.ckpt: no labels_mapping\.json"):
        load_classifier(ckpt)
    mapping = trained_run.run_dir / "labels_mapping.json"
    assert load_classifier(ckpt, mapping).num_classes == 3
    with pytest.raises(ModelLoadError, match=r"nowhere\.json: labels mapping file not"):
        ONNXClassifier(lonely, tmp_path / "nowhere.json")
    with pytest.raises(ModelLoadError, match=r"missing\.onnx: model file not found"):
        ONNXClassifier(tmp_path / "missing.onnx", mapping)


def test_mapping_is_looked_for_beside_the_model_then_in_the_run_folder(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    assert mapping_candidates(run / "checkpoints" / "best.ckpt") == [
        run / "checkpoints" / "labels_mapping.json",
        run.resolve() / "labels_mapping.json",
    ]
    assert mapping_candidates(run / "model.onnx") == [run / "labels_mapping.json"]
    assert mapping_candidates(run / "export" / "best.ckpt") == [
        run / "export" / "labels_mapping.json"
    ]


def test_unsupported_preprocessing_is_a_load_error(
    color_model: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copy(color_model, tmp_path / "model.onnx"))
    mapping = read_labels_mapping(color_model.parent / "labels_mapping.json")
    mapping["preprocessing"]["resize"]["interpolation"] = "bicubic"
    (tmp_path / "labels_mapping.json").write_text(json.dumps(mapping))
    with pytest.raises(ModelLoadError, match=r"labels_mapping\.json.*bicubic"):
        ONNXClassifier(model)


def test_mapping_of_another_run_is_refused(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    config = DataModuleConfig(data_root=tmp_path, image_size=32)
    other = write_labels_mapping(tmp_path, {"x": 0, "y": 1, "z": 2}, config)
    with pytest.raises(ModelLoadError, match="belongs to another run"):
        CheckpointClassifier(trained_run.checkpoint, other)
    four = write_labels_mapping(
        tmp_path / "four.json", {"a": 0, "b": 1, "c": 2, "d": 3}, config
    )
    with pytest.raises(ModelLoadError, match=r"3 outputs but .* lists 4 classes"):
        ONNXClassifier(trained_run.onnx, four)


def test_not_a_model_is_named(tmp_path: Path) -> None:
    config = DataModuleConfig(data_root=tmp_path, image_size=32)
    write_labels_mapping(tmp_path, {"a": 0, "b": 1}, config)
    junk = tmp_path / "model.onnx"
    junk.write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: cannot load ONNX"):
        ONNXClassifier(junk)
    bad_ckpt = tmp_path / "x.ckpt"
    bad_ckpt.write_text("not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"x\.ckpt: cannot load checkpoint safely"):
        CheckpointClassifier(bad_ckpt)


def test_checkpoint_uses_averaged_weights(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    """With weight averaging, ``state_dict`` holds the EMA weights to use."""
    checkpoint = torch.load(trained_run.checkpoint, weights_only=True)
    # Raw weights as Lightning's WeightAveraging stores them: deliberately broken.
    checkpoint["current_model_state"] = {
        k: torch.zeros_like(v) for k, v in checkpoint["state_dict"].items()
    }
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run.run_dir / "labels_mapping.json", run)
    torch.save(checkpoint, run / "checkpoints" / "ema.ckpt")
    images = _test_images(trained_run)
    ema = CheckpointClassifier(run / "checkpoints" / "ema.ckpt")
    batch = ema.preprocessor.batch(images)
    np.testing.assert_allclose(
        ema.predict_proba(batch),
        ONNXClassifier(trained_run.onnx).predict_proba(batch),
        atol=1e-4,
    )


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_architecture_is_found_from_the_weights(
    trained_run: TrainedRun, tmp_path: Path, arch: str
) -> None:
    """A checkpoint that does not name its model class is matched by its weights."""
    checkpoint = torch.load(trained_run.checkpoint, weights_only=True)
    del checkpoint["model_class"]
    network = getattr(tv_models, arch)(weights=None, num_classes=3)
    checkpoint["state_dict"] = {
        f"network.{k}": v for k, v in network.state_dict().items()
    } | {"class_weights": torch.ones(3)}
    path = tmp_path / f"{arch}.ckpt"
    torch.save(checkpoint, path)
    classifier = CheckpointClassifier(path)
    assert classifier.model_class.endswith(f"ResNet{arch[6:]}ClassificationModel")
    checkpoint["state_dict"] = {
        k: v for k, v in checkpoint["state_dict"].items() if "layer4.1" not in k
    }
    torch.save(checkpoint, path)
    with pytest.raises(ModelLoadError, match=rf"{arch}\.ckpt: weights fit no known"):
        CheckpointClassifier(path)
