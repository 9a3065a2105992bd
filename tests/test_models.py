"""Models: shapes, ConfigStore registration, weights loading, optimizer, schedule."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torchvision
from hydra.core.config_store import ConfigStore

from classifier_training.models import (
    ResNet18ClassificationModel,
    ResNet34ClassificationModel,
    ResNet50ClassificationModel,
)
from classifier_training.models.base import build_warmup_cosine
from classifier_training.models.resnet import WeightsError, build_resnet


@pytest.mark.parametrize(
    ("cls", "features"),
    [
        (ResNet18ClassificationModel, 512),
        (ResNet34ClassificationModel, 512),
        (ResNet50ClassificationModel, 2048),
    ],
)
def test_forward_shape_and_head(cls: type, features: int) -> None:
    model = cls(num_classes=7, pretrained=False).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 7)
    assert model.network.fc.in_features == features
    assert model.network.fc.out_features == 7


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_models_are_registered_in_config_store(name: str) -> None:
    node = ConfigStore.instance().repo["model"][f"{name}.yaml"].node
    assert node["_target_"].endswith("ClassificationModel")
    assert name[-2:] in node["_target_"]
    # runtime arguments come from the data, never from the config
    assert "num_classes" not in node
    assert "class_names" not in node
    assert node["learning_rate"] == 1e-3
    assert node["label_smoothing"] == 0.1


def test_class_names_must_match_num_classes() -> None:
    with pytest.raises(ValueError, match="2 class_names for 3 classes"):
        ResNet18ClassificationModel(
            num_classes=3, class_names=["a", "b"], pretrained=False
        )


def test_weights_path_loads_torchvision_state_dict(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    network = build_resnet("resnet18", 4, pretrained=False, weights_path=str(path))
    assert torch.equal(network.conv1.weight, source.conv1.weight)
    assert network.fc.out_features == 4  # the 1000-class head is not used


def test_weights_path_accepts_a_project_checkpoint(tmp_path: Path) -> None:
    trained = ResNet18ClassificationModel(num_classes=4, pretrained=False)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": trained.state_dict()}, path)
    network = build_resnet("resnet18", 4, pretrained=False, weights_path=str(path))
    assert torch.equal(network.fc.weight, trained.network.fc.weight)


def test_weights_path_for_the_wrong_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        build_resnet("resnet18", 4, pretrained=False, weights_path=str(path))


def test_missing_weights_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"nothing\.pth does not exist"):
        build_resnet(
            "resnet18", 4, pretrained=False, weights_path=str(tmp_path / "nothing.pth")
        )


def test_pretrained_uses_torchvision_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torchvision's real loading path, served from $TORCH_HOME instead of the network.
    reference = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(url).name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    network = build_resnet("resnet18", 3, pretrained=True, weights_path=None)
    assert torch.equal(network.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)


def test_failed_download_says_how_to_proceed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # An unreachable proxy makes the download fail alike with or without internet.
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsError) as info:
        build_resnet("resnet18", 3, pretrained=True, weights_path=None)
    message = str(info.value)
    assert "model.weights_path=" in message
    assert "model.pretrained=false" in message
    assert "hub/checkpoints" in message


def test_parameter_groups_skip_decay_on_norms_and_biases() -> None:
    model = ResNet18ClassificationModel(
        num_classes=3, pretrained=False, weight_decay=0.1
    )
    decay, no_decay = model.parameter_groups()
    assert decay["weight_decay"] == 0.1
    assert no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == sum(p.numel() for p in model.network.parameters())


def lr_trace(
    total: int, warmup: int, lr: float = 1.0, floor: float = 0.01
) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=lr)
    scheduler = build_warmup_cosine(optimizer, total, warmup, floor)
    trace = []
    for _ in range(total):
        trace.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    trace.append(optimizer.param_groups[0]["lr"])  # after the last step
    return trace


def test_schedule_warms_up_then_ends_exactly_at_the_floor() -> None:
    trace = lr_trace(total=100, warmup=10)
    assert trace[0] == pytest.approx(0.01)
    assert trace[10] == pytest.approx(1.0)
    assert all(a <= b for a, b in itertools.pairwise(trace))
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(trace))
    assert trace[-1] == pytest.approx(0.01)
    assert trace[55] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)


def test_schedule_without_warmup_is_pure_cosine() -> None:
    trace = lr_trace(total=20, warmup=0)
    assert trace[0] == pytest.approx(1.0)
    assert trace[-1] == pytest.approx(0.01)
