"""Models: shapes, ConfigStore registration, weights loading, optimizer, schedule."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torchvision
from hydra.core.config_store import ConfigStore
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from classifier_training.models import (
    ResNet18ClassificationModel,
    ResNet34ClassificationModel,
    ResNet50ClassificationModel,
)
from classifier_training.models.base import (
    WARMUP_START_FACTOR,
    BaseClassificationModel,
    build_warmup_cosine,
)
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
    warmup, decay = trace[:11], trace[10:]
    assert all(a <= b for a, b in itertools.pairwise(warmup))
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(decay))
    assert trace[-1] == pytest.approx(0.01)
    assert trace[55] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)


def test_schedule_without_warmup_is_pure_cosine() -> None:
    trace = lr_trace(total=20, warmup=0)
    assert trace[0] == pytest.approx(1.0)
    assert trace[-1] == pytest.approx(0.01)


# -- the schedule and metrics of a real (tiny) fit ------------------------------------
class TinyLinearModel(BaseClassificationModel):
    """The project's training logic around a one-layer network (fast on CPU)."""

    def build_network(
        self, num_classes: int, pretrained: bool, weights_path: str | None
    ) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, num_classes))


class KnownLogits(nn.Module):
    """Returns its input as the logits, so the model's outputs are known.

    The zero-weighted parameter only gives the optimizer something to hold.
    """

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) + 0.0 * self.unused


class KnownLogitsModel(BaseClassificationModel):
    """The project's training logic around :class:`KnownLogits`."""

    def build_network(
        self, num_classes: int, pretrained: bool, weights_path: str | None
    ) -> nn.Module:
        return KnownLogits()


class LRRecorder(Callback):
    """The learning rate of every optimizer step as used, and the one after the fit."""

    def __init__(self) -> None:
        self.used: list[list[float]] = []
        self.after_fit: list[float] = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        self.used.append([group["lr"] for group in optimizer.param_groups])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.after_fit = [group["lr"] for group in trainer.optimizers[0].param_groups]


def tiny_trainer(max_epochs: int, callbacks: list[Callback]) -> L.Trainer:
    """A quiet CPU trainer that writes nothing."""
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def random_batches(rows: int, batch_size: int) -> DataLoader[Any]:
    """Random 2x2 images of three classes as ``ClassificationBatch`` dicts."""
    generator = torch.Generator().manual_seed(0)
    items = [
        {"images": torch.randn(3, 2, 2, generator=generator), "labels": i % 3}
        for i in range(rows)
    ]
    return DataLoader(items, batch_size=batch_size)  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:You defined a `validation_step`")
@pytest.mark.parametrize(
    ("rows", "batch_size", "epochs", "warmup_epochs", "warmup_steps"),
    [
        (6, 2, 2, 1.0, 3),  # 6 steps: the run of the bug report
        (12, 2, 2, 0.5, 3),  # 12 steps, warm-up of half an epoch
    ],
)
def test_fit_uses_the_planned_lr_at_every_step(
    rows: int, batch_size: int, epochs: int, warmup_epochs: float, warmup_steps: int
) -> None:
    peak, floor_ratio = 0.1, 0.05
    model = TinyLinearModel(
        num_classes=3,
        learning_rate=peak,
        warmup_epochs=warmup_epochs,
        min_lr_ratio=floor_ratio,
        pretrained=False,
    )
    recorder = LRRecorder()
    trainer = tiny_trainer(epochs, [recorder])
    trainer.fit(model, train_dataloaders=random_batches(rows, batch_size))
    total = rows // batch_size * epochs
    assert trainer.estimated_stepping_batches == total
    assert len(recorder.used) == total
    # Both parameter groups (with and without weight decay) follow one schedule.
    assert all(len(set(step)) == 1 for step in recorder.used)
    used = [step[0] for step in recorder.used]

    # Hand formula: linear from 1% of the peak over the warm-up, then half a cosine
    # that reaches peak * min_lr_ratio after the last step.
    def planned(step: int) -> float:
        if step < warmup_steps:
            return peak * (0.01 + 0.99 * step / warmup_steps)
        progress = (step - warmup_steps) / (total - warmup_steps)
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return peak * (floor_ratio + (1 - floor_ratio) * cosine)

    assert WARMUP_START_FACTOR == 0.01
    assert used[0] == pytest.approx(peak * 0.01)
    assert used[warmup_steps] == pytest.approx(peak)
    assert used == pytest.approx([planned(i) for i in range(total)], rel=1e-6)
    assert recorder.after_fit == pytest.approx([peak * floor_ratio] * 2)
    if total == 6:  # the bug report's numbers: 0.26 of the peak, not the floor
        assert used[-1] / peak == pytest.approx(0.05 + 0.95 * 0.25)


def known_logit_batches(
    ranks: list[int], num_classes: int, seed: int, batch_size: int
) -> DataLoader[Any]:
    """Rows whose true class sits at the given rank of the logits (0: the top).

    Each row's other classes are shuffled; logits are ``num_classes - position``,
    so there are no ties.
    """
    generator = torch.Generator().manual_seed(seed)
    items = []
    for row, rank in enumerate(ranks):
        label = row % num_classes
        others = torch.randperm(num_classes, generator=generator).tolist()
        others.remove(label)
        order = [*others[:rank], label, *others[rank:]]
        logits = torch.empty(num_classes)
        for position, klass in enumerate(order):
            logits[klass] = float(num_classes - position)
        items.append({"images": logits.view(num_classes, 1, 1), "labels": label})
    return DataLoader(items, batch_size=batch_size)  # type: ignore[arg-type]


def test_train_val_test_top1_and_top5_on_known_logits() -> None:
    # Ranks of the true class among 7 logits. Train: top-1 2/8 (ranks 0), top-5
    # 6/8 (ranks < 5); batches of 3 so a per-batch mean would give 7/9 instead.
    train_ranks = [0, 1, 4, 5, 6, 2, 3, 0]
    val_ranks = [0, 6, 3, 5]  # top-1 1/4, top-5 2/4
    test_ranks = [1, 2, 3, 4, 5]  # top-1 0, top-5 4/5
    model = KnownLogitsModel(num_classes=7, pretrained=False, warmup_epochs=0.0)
    trainer = tiny_trainer(1, [])
    trainer.fit(
        model,
        train_dataloaders=known_logit_batches(train_ranks, 7, seed=1, batch_size=3),
        val_dataloaders=known_logit_batches(val_ranks, 7, seed=2, batch_size=3),
    )
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert logged["train/acc_top1"] == pytest.approx(2 / 8)
    assert logged["train/acc_top5"] == pytest.approx(6 / 8)
    assert logged["val/acc_top1"] == pytest.approx(1 / 4)
    assert logged["val/acc_top5"] == pytest.approx(2 / 4)
    (tested,) = trainer.test(
        model,
        dataloaders=known_logit_batches(test_ranks, 7, seed=3, batch_size=2),
        verbose=False,
    )
    assert tested["test/acc_top1"] == pytest.approx(0.0)
    assert tested["test/acc_top5"] == pytest.approx(4 / 5)
