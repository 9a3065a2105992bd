"""ONNX export: the onnxruntime check passes on good exports and fails on broken
ones; ``classifier-export`` on checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from classifier_training.core.contract import DeploymentContract
from classifier_training.core.errors import USER_ERROR_EXIT_CODE
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.export import (
    OnnxVerificationError,
    export_onnx,
    main,
    verify_onnx,
)
from classifier_training.models import ImageClassifier

SIZE = 16


def _contract(
    names: tuple[str, ...] = ("a", "b", "c", "d"), size: int = SIZE
) -> DeploymentContract:
    return DeploymentContract(
        arch="resnet18",
        class_names=names,
        image_size=size,
        resize_mode="squash",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


class TinyNet(nn.Module):
    """A small classifier: exports in well under a second."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.features(x))
        return logits


class DriftingNet(TinyNet):
    """Eager output changes with every call; an export freezes the trace-time one.

    A deliberately broken export: the ONNX file cannot reproduce PyTorch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x) + float(self.calls)


def _images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def good_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    network = TinyNet().eval()
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = export_onnx(network, _contract(), out, verify_images=_images())
    assert result.max_abs_diff <= 1e-4
    assert result.batch_sizes == (1, 6)
    return out, network


def test_good_export_is_one_file_with_the_agreed_interface(
    good_export: tuple[Path, nn.Module],
) -> None:
    path, network = good_export
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert inp.name == "input"
    assert out.name == "logits"
    assert inp.shape[1:] == [3, SIZE, SIZE]
    assert isinstance(inp.shape[0], str)  # dynamic batch axis
    for batch in (1, 3, 17):
        images = _images(batch)
        (logits,) = session.run(["logits"], {"input": images.numpy()})
        with torch.no_grad():
            expected = network(images).numpy()
        np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_export_does_not_touch_the_training_network(tmp_path: Path) -> None:
    network = TinyNet().train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    export_onnx(
        network, _contract(), tmp_path / "m.onnx"
    )  # noise images: still checked
    assert network.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_check_fails_on_a_tampered_file(
    good_export: tuple[Path, nn.Module], tmp_path: Path
) -> None:
    path, network = good_export
    proto = onnx.load(str(path))
    for tensor in proto.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.shape == (4,):  # the head's bias
            tensor.CopyFrom(numpy_helper.from_array(values + 0.5, tensor.name))
            break
    else:
        pytest.fail("no bias initializer found")
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(OnnxVerificationError, match=r"broken\.onnx.*differ"):
        verify_onnx(broken, network, _images(), _contract())


def test_check_fails_on_the_wrong_interface(tmp_path: Path) -> None:
    network = TinyNet().eval()
    path = tmp_path / "names.onnx"
    torch.onnx.export(
        network,
        (_images(2),),
        str(path),
        dynamo=True,
        input_names=["x"],
        output_names=["y"],
        external_data=False,
    )
    with pytest.raises(OnnxVerificationError, match="expected input 'input'"):
        verify_onnx(path, network, _images(), _contract())


def test_broken_export_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    with pytest.raises(OnnxVerificationError, match="differ from PyTorch"):
        export_onnx(DriftingNet().eval(), _contract(), out, verify_images=_images())
    assert list(tmp_path.iterdir()) == []  # no model.onnx, no temporary file


def test_not_an_onnx_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not onnx")
    with pytest.raises(OnnxVerificationError, match="not a valid ONNX model"):
        verify_onnx(path, TinyNet(), _images(), _contract())


# -- classifier-export --------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoints as Lightning writes them: with and without the data module state."""
    folder = tmp_path_factory.mktemp("ckpt")
    model = ImageClassifier(
        num_classes=3, class_names=["", "23", "7"], arch="resnet18", pretrained=False
    )
    plain = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "epoch": 0,
    }
    torch.save(plain, folder / "plain.ckpt")
    contract = _contract(("", "23", "7"), size=24)
    state = {"deployment_contract": contract.to_json()}
    torch.save(plain | {"ImageFolderDataModule": state}, folder / "run.ckpt")
    return folder


def test_cli_reports_a_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nope.ckpt")]) == USER_ERROR_EXIT_CODE
    assert "nope.ckpt: checkpoint file not found" in capsys.readouterr().err


def test_cli_says_a_file_is_not_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "x.ckpt"
    junk.write_text("junk\n")
    assert main([str(junk), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {junk}: not a checkpoint (not a PyTorch file)"
    assert not (tmp_path / "m.onnx").exists()


def test_cli_says_a_checkpoint_without_contract_is_too_old(
    checkpoint_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([str(checkpoint_dir / "plain.ckpt"), "--out", str(tmp_path / "m.onnx")])
    assert code == USER_ERROR_EXIT_CODE
    assert "plain.ckpt: checkpoint too old" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_exports_a_checkpoint_alone(checkpoint_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "model.onnx"
    assert main([str(checkpoint_dir / "run.ckpt"), "--out", str(out)]) == 0
    mapping = json.loads((out.parent / "labels_mapping.json").read_text())
    assert mapping == _contract(("", "23", "7"), size=24).to_json()
    assert mapping["format_version"] == 5
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, 24, 24]  # from the contract


def test_cli_names_an_unreadable_verification_image(
    checkpoint_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    code = main(
        [
            str(checkpoint_dir / "run.ckpt"),
            "--out",
            str(tmp_path / "m.onnx"),
            "--images",
            str(junk),
        ]
    )
    assert code == USER_ERROR_EXIT_CODE
    assert f"{junk}: cannot read image" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
