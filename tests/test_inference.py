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
from classifier_training.core.contract import (
    DeploymentContract,
    LabelsMappingError,
    find_labels_mapping,
    read_labels_mapping,
    write_labels_mapping,
)
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.core.readers import find_splits, read_split
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.inference import (
    CheckpointClassifier,
    ModelLoadError,
    ONNXClassifier,
    Prediction,
    Preprocessor,
    load_classifier,
)
from classifier_training.inference.evaluate import evaluate_samples
from classifier_training.inference.runtime import choose_provider
from tests.helpers import class_image, make_jsonl_dataset
from tests.inference_support import REPO, TrainedRun

FIXTURES = Path(__file__).parent / "fixtures"


def _contract(names: tuple[str, ...], size: int = 16) -> DeploymentContract:
    return DeploymentContract(
        arch="resnet18",
        class_names=names,
        image_size=size,
        resize_mode="squash",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


def _v1_mapping_with(interpolation: str) -> dict[str, object]:
    """Today's format-1 fixture, with another interpolation written in."""
    mapping = json.loads((FIXTURES / "labels_mapping_v1.json").read_text())
    mapping["preprocessing"]["resize"]["interpolation"] = interpolation
    return dict(mapping)


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
    mapping_file = write_labels_mapping(datamodule.contract, tmp_path)
    # Only the JSON file is used from here on: the deployment's view.
    preprocessor = Preprocessor.from_contract(read_labels_mapping(mapping_file))
    dataset = datamodule.datasets["val"]
    assert len(dataset) == 6
    for index, sample in enumerate(dataset.samples):
        expected = dataset[index]["images"]
        assert isinstance(expected, torch.Tensor)
        actual = preprocessor(sample.image)
        assert actual.dtype == np.float32
        assert actual.shape == (3, 28, 28)
        np.testing.assert_allclose(actual, expected.numpy(), atol=1e-6, rtol=0)


def test_preprocessor_batch_and_pil_input(tmp_path: Path) -> None:
    write_labels_mapping(_contract(("a", "b")), tmp_path)
    pre = Preprocessor.from_contract(
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
    path = tmp_path / "labels_mapping.json"
    path.write_text(json.dumps(_v1_mapping_with("bicubic")))
    with pytest.raises(LabelsMappingError, match=r"labels_mapping\.json.*bicubic"):
        read_labels_mapping(path)


# -- classifiers on a trained, exported model ---------------------------------------
def test_onnx_and_checkpoint_classifiers_agree(trained_run: TrainedRun) -> None:
    images = _test_images(trained_run)
    onnx = ONNXClassifier(trained_run.onnx)
    ckpt = CheckpointClassifier(trained_run.checkpoint)
    assert onnx.class_names == ckpt.class_names == ["", "23", "7"]
    # One contract: the checkpoint's own equals the run's labels_mapping.json.
    assert ckpt.contract == onnx.contract
    assert ckpt.contract.arch == "resnet18"
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
    assert choose_provider() in ort.get_available_providers()
    with pytest.raises(ModelLoadError, match="not available"):
        choose_provider("nonexistent")


@pytest.mark.parametrize(
    ("installed", "chosen"),
    [
        # onnxruntime-gpu lists TensorRT first: CUDA is still preferred.
        (
            [
                "TensorrtExecutionProvider",
                "CUDAExecutionProvider",
                "CPUExecutionProvider",
            ],
            "CUDAExecutionProvider",
        ),
        (["AzureExecutionProvider", "CPUExecutionProvider"], "CPUExecutionProvider"),
        (["CoreMLExecutionProvider"], "CoreMLExecutionProvider"),
    ],
)
def test_choose_provider_prefers_cuda_then_cpu(
    installed: list[str], chosen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other onnxruntime builds cannot be installed side by side: their provider
    # lists are given here.
    monkeypatch.setattr(ort, "get_available_providers", lambda: installed)
    assert choose_provider() == chosen


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
    assert len(evaluation.samples) == 12
    computed = evaluation.metrics()
    assert abs(computed["top1"] - test_metrics["acc_top1"]) <= 0.001
    assert computed["top5_k"] == 3
    assert computed["top5"] == test_metrics["acc_top5"] == 1.0


# -- loading errors ------------------------------------------------------------------
def test_missing_mapping_is_named(trained_run: TrainedRun, tmp_path: Path) -> None:
    lonely = shutil.copy(trained_run.onnx, tmp_path / "model.onnx")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: no labels_mapping\.json"):
        ONNXClassifier(lonely)
    # A checkpoint carries its contract: a copy on its own works.
    ckpt = shutil.copy(trained_run.checkpoint, tmp_path / "best.ckpt")
    assert load_classifier(ckpt).class_names == ["", "23", "7"]
    mapping = trained_run.run_dir / "labels_mapping.json"
    with pytest.raises(ModelLoadError, match=r"best\.ckpt: a checkpoint carries its"):
        load_classifier(ckpt, mapping)
    with pytest.raises(ModelLoadError, match=r"nowhere\.json: labels mapping file not"):
        ONNXClassifier(lonely, tmp_path / "nowhere.json")
    with pytest.raises(ModelLoadError, match=r"missing\.onnx: model file not found"):
        ONNXClassifier(tmp_path / "missing.onnx", mapping)


def test_mapping_is_looked_for_beside_the_model_then_in_the_run_folder(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model = run / "checkpoints" / "best.ckpt"
    with pytest.raises(LabelsMappingError, match="looked in"):
        find_labels_mapping(model)
    in_run = write_labels_mapping(_contract(("a", "b")), run)
    assert find_labels_mapping(model) == run.resolve() / "labels_mapping.json"
    assert find_labels_mapping(run / "model.onnx") == in_run
    beside = write_labels_mapping(_contract(("a", "b")), run / "checkpoints")
    assert find_labels_mapping(model) == beside
    # A folder named otherwise is not a run's checkpoints folder.
    (tmp_path / "export").mkdir()
    with pytest.raises(LabelsMappingError):
        find_labels_mapping(tmp_path / "export" / "best.ckpt")


def test_unsupported_preprocessing_is_a_load_error(
    color_model: Path, tmp_path: Path
) -> None:
    model = Path(shutil.copy(color_model, tmp_path / "model.onnx"))
    (tmp_path / "labels_mapping.json").write_text(
        json.dumps(_v1_mapping_with("bicubic"))
    )
    with pytest.raises(ModelLoadError, match=r"labels_mapping\.json.*bicubic"):
        ONNXClassifier(model)


def test_mapping_of_another_model_is_refused(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    four = write_labels_mapping(
        _contract(("a", "b", "c", "d"), size=32), tmp_path / "four.json"
    )
    with pytest.raises(ModelLoadError, match=r"3 outputs but .* lists 4 classes"):
        ONNXClassifier(trained_run.onnx, four)


def test_not_a_model_is_named(tmp_path: Path) -> None:
    write_labels_mapping(_contract(("a", "b"), size=32), tmp_path)
    junk = tmp_path / "model.onnx"
    junk.write_text("junk")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: not an ONNX model"):
        ONNXClassifier(junk)
    bad_ckpt = tmp_path / "x.ckpt"
    bad_ckpt.write_text("junk\n")
    with pytest.raises(ModelLoadError, match=r"x\.ckpt: not a checkpoint"):
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
    torch.save(checkpoint, tmp_path / "ema.ckpt")
    images = _test_images(trained_run)
    ema = CheckpointClassifier(tmp_path / "ema.ckpt")
    batch = ema.preprocessor.batch(images)
    np.testing.assert_allclose(
        ema.predict_proba(batch),
        ONNXClassifier(trained_run.onnx).predict_proba(batch),
        atol=1e-4,
    )


def test_checkpoint_builds_the_architecture_its_contract_names(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    """No guessing: the network is ``build_network(contract.arch, ...)``."""
    checkpoint = torch.load(trained_run.checkpoint, weights_only=True)
    state = checkpoint["ImageFolderDataModule"]  # Lightning: the class's qualname
    state["deployment_contract"]["arch"] = "resnet34"
    network = tv_models.resnet34(weights=None, num_classes=3)
    checkpoint["state_dict"] = {
        f"network.{k}": v for k, v in network.state_dict().items()
    }
    path = tmp_path / "resnet34.ckpt"
    torch.save(checkpoint, path)
    assert CheckpointClassifier(path).contract.arch == "resnet34"
    # Weights of another architecture than the contract says: named, one line.
    state["deployment_contract"]["arch"] = "resnet18"
    torch.save(checkpoint, path)
    with pytest.raises(ModelLoadError, match=r"resnet34\.ckpt: weights do not fit"):
        CheckpointClassifier(path)


def _legacy_checkpoint(path: Path, with_mapping: bool) -> torch.nn.Module:
    """A checkpoint as the code before the contract wrote it (format 1)."""
    mapping = json.loads((FIXTURES / "labels_mapping_v1.json").read_text())
    network = tv_models.resnet18(weights=None, num_classes=4).eval()
    checkpoint: dict[str, object] = {
        "epoch": 1,
        "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()}
        | {"class_weights": torch.ones(4)},
        "hyper_parameters": {
            "num_classes": 4,
            "class_names": ["", "1", "23", "7"],
            "learning_rate": 1e-3,
            "pretrained": False,
            "weights_path": None,
        },
    }
    if with_mapping:
        checkpoint["labels_mapping"] = mapping
        checkpoint["model_class"] = (
            "classifier_training.models.resnet.ResNet18ClassificationModel"
        )
    torch.save(checkpoint, path)
    return network


def test_checkpoint_of_the_previous_format_still_loads(tmp_path: Path) -> None:
    network = _legacy_checkpoint(tmp_path / "old.ckpt", with_mapping=True)
    classifier = CheckpointClassifier(tmp_path / "old.ckpt")
    assert classifier.contract.arch == "resnet18"
    assert classifier.class_names == ["", "1", "23", "7"]
    assert classifier.contract.resize_mode == "letterbox"
    batch = np.random.default_rng(0).standard_normal((2, 3, 40, 40)).astype("f4")
    with torch.no_grad():
        expected = network(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(classifier.predict_logits(batch), expected, atol=1e-5)
    # Older still (no onnx_export callback): said clearly, not guessed.
    _legacy_checkpoint(tmp_path / "older.ckpt", with_mapping=False)
    with pytest.raises(ModelLoadError, match=r"older\.ckpt: checkpoint too old"):
        CheckpointClassifier(tmp_path / "older.ckpt")
