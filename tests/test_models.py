"""Models: one classifier for every architecture, the seed's classes, settings,
registration, optimizer, schedules."""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torchvision
from hydra.core.config_store import ConfigStore
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader

from classifier_training.config import ConfigError
from classifier_training.core.readers import MIN_CLASSES
from classifier_training.models import (
    BaseClassificationModel,
    ImageClassifier,
    ResNet18ClassificationModel,
    ResNet34ClassificationModel,
    ResNet50ClassificationModel,
)
from classifier_training.models.factory import (
    UnknownArchitectureError,
    WeightsError,
    build_network,
)
from classifier_training.models.optim import (
    WARMUP_START_FACTOR,
    build_warmup_cosine,
    one_cycle,
    step_decay,
    warmup_cosine,
)
from classifier_training.models.settings import ModelSettings
from classifier_training.utils.hydra import config_node_for
from tests.helpers import quiet_trainer


@pytest.mark.parametrize(
    ("arch", "size"),
    [
        ("resnet18", 32),
        ("mobilenet_v3_small", 32),
        ("efficientnet_b0", 32),
        ("timm/test_resnet", 32),
    ],
)
def test_any_architecture_by_name(arch: str, size: int) -> None:
    model = ImageClassifier(num_classes=7, arch=arch, pretrained=False).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 7)
    assert model.hparams["arch"] == arch


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(UnknownArchitectureError, match="resnet19"):
        ImageClassifier(num_classes=3, arch="resnet19", pretrained=False)


def test_base_model_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        BaseClassificationModel(num_classes=3)  # type: ignore[abstract]


SEED_CLASSES = {
    "resnet18": (ResNet18ClassificationModel, [2, 2, 2, 2], "BasicBlock"),
    "resnet34": (ResNet34ClassificationModel, [3, 4, 6, 3], "BasicBlock"),
    "resnet50": (ResNet50ClassificationModel, [3, 4, 6, 3], "Bottleneck"),
}


@pytest.mark.parametrize("name", sorted(SEED_CLASSES))
def test_seed_resnet_options_build_the_seed_classes(name: str) -> None:
    cls, blocks, block = SEED_CLASSES[name]
    node = ConfigStore.instance().repo["model"][f"{name}.yaml"].node
    assert node["_target_"] == f"classifier_training.models.resnet.{cls.__name__}"
    assert node["arch"] == name
    # runtime arguments come from the data and from their own groups
    for key in ("num_classes", "class_names", "optimizer", "scheduler"):
        assert key not in node
    model = instantiate(node, num_classes=3, pretrained=False)
    assert type(model) is cls
    assert isinstance(model, ImageClassifier)
    network = model.network
    assert isinstance(network, torchvision.models.ResNet)
    layers = [network.layer1, network.layer2, network.layer3, network.layer4]
    assert [len(layer) for layer in layers] == blocks
    assert type(network.layer1[0]).__name__ == block
    assert network.fc.out_features == 3
    # the class's own default, without the config
    assert cls(num_classes=3, pretrained=False).settings.arch == name


def test_each_model_node_is_its_settings_defaults() -> None:
    """The Hydra node of every option is generated from the settings model."""
    repo = ConfigStore.instance().repo["model"]
    assert {"image_classifier.yaml", "resnet18.yaml"} <= set(repo)
    for entry in repo.values():
        node = dict(entry.node)
        cls = get_class(node.pop("_target_"))
        assert node == cls.settings_model().model_dump(mode="json"), entry.name
    generic = repo["image_classifier.yaml"].node
    assert generic["_target_"].endswith("classifier.ImageClassifier")


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"label_smoothing": 1.5}, "model.label_smoothing"),
        ({"mixup_alpha": -0.1}, "model.mixup_alpha"),
        ({"cutmix_alpha": -1.0}, "model.cutmix_alpha"),
        ({"mixup_prob": 2.0}, "model.mixup_prob"),
        ({"mixup_off_last_epochs": -1}, "model.mixup_off_last_epochs"),
        ({"lr_reference_batch": 0}, "model.lr_reference_batch"),
        ({"compile": "sometimes"}, "model.compile"),
        ({"label_smoothin": 0.1}, "model.label_smoothin: unknown key"),
    ],
)
def test_bad_settings_are_one_line_naming_the_key(
    settings: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _Tiny(num_classes=3, **settings)
    message = str(raised.value)
    assert message.startswith(key)
    assert "\n" not in message


def test_network_settings_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"^model\.arch: .*at least 1 character"):
        ImageClassifier(num_classes=3, arch="", pretrained=False)
    with pytest.raises(ConfigError, match=r"^model\.arch: unknown key"):
        _Tiny(num_classes=3, arch="resnet18")  # builds its own network


class _WideSettings(ModelSettings):
    width: int = Field(default=16, ge=1)


class _Wide(BaseClassificationModel):
    """A model with a setting of its own, as the README's recipe shows."""

    settings_model = _WideSettings
    settings: _WideSettings

    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(self.settings.width, num_classes))


def test_a_model_with_settings_of_its_own() -> None:
    node = config_node_for(_Wide)
    assert node["width"] == 16
    assert node["label_smoothing"] == 0.1  # and the shared recipe's keys
    assert _Wide(num_classes=3, width=32).network[1].in_features == 32
    with pytest.raises(ConfigError) as raised:
        _Wide(num_classes=3, width=0)
    assert str(raised.value) == (
        "model.width: Input should be greater than or equal to 1 (got 0)"
    )


def test_num_classes_follows_the_data_rule() -> None:
    with pytest.raises(ValueError, match=f"num_classes must be >= {MIN_CLASSES}"):
        _Tiny(num_classes=MIN_CLASSES - 1)


def test_checkpoint_hparams_load_back_weights_only(tmp_path: Path) -> None:
    """Checkpoints hold plain hyper-parameters: the model's constructor takes them
    back (Lightning's ``load_from_checkpoint``, ``weights_only``), those written
    before the settings model included (same keys)."""
    model = ImageClassifier(
        num_classes=3,
        class_names=["b", "a", ""],
        arch="resnet18",
        pretrained=False,
        label_smoothing=0.0,
        mixup_alpha=0.2,
    )
    stored = dict(model.hparams)
    assert stored == {
        "num_classes": 3,
        "class_names": ["b", "a", ""],
        "class_counts": None,
        "arch": "resnet18",
        "pretrained": False,
        "weights_path": None,
        "label_smoothing": 0.0,
        "class_weighted_loss": False,
        "class_weighted_last_epochs": 0,
        "loss": "cross_entropy",
        "logit_adjust_tau": 1.0,
        "ldam_max_margin": 0.5,
        "ldam_scale": 1.0,
        "mixup_alpha": 0.2,
        "cutmix_alpha": 0.0,
        "mixup_prob": 1.0,
        "mixup_off_last_epochs": 0,
        "scale_lr_with_batch": False,
        "lr_reference_batch": 256,
        "channels_last": None,
        "compile": False,
    }
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": stored,
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    loaded = ImageClassifier.load_from_checkpoint(path, weights_only=True)
    assert loaded.settings == model.settings
    assert loaded.class_names == ["b", "a", ""]
    assert torch.equal(loaded.network.fc.weight, model.network.fc.weight)


def test_class_names_must_match_num_classes() -> None:
    with pytest.raises(ValueError, match="2 class_names for 3 classes"):
        ImageClassifier(num_classes=3, class_names=["a", "b"], pretrained=False)


def test_weights_path_accepts_a_project_checkpoint(tmp_path: Path) -> None:
    trained = ImageClassifier(num_classes=4, pretrained=False)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": trained.state_dict()}, path)
    model = ImageClassifier(num_classes=4, pretrained=False, weights_path=str(path))
    assert torch.equal(model.network.fc.weight, trained.network.fc.weight)


def test_weights_path_loads_torchvision_state_dict(tmp_path: Path) -> None:
    source = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    network = build_network("resnet18", 4, weights_path=str(path))
    assert torch.equal(network.conv1.weight, source.conv1.weight)
    assert network.fc.out_features == 4  # the 1000-class head is not used


def test_weights_for_the_wrong_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        ImageClassifier(num_classes=4, pretrained=False, weights_path=str(path))


def test_parameter_groups_leave_norms_and_biases_undecayed() -> None:
    model = ImageClassifier(num_classes=3, pretrained=False)
    decay, no_decay = model.parameter_groups()
    optimizer = torch.optim.AdamW([decay, no_decay], lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == sum(p.numel() for p in model.network.parameters())


class _Tiny(BaseClassificationModel):
    """The training logic around a network that trains in milliseconds."""

    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, num_classes))


def _fit(model: BaseClassificationModel, max_epochs: int = 2) -> L.Trainer:
    """Fit on 8 batches of 4 random images; return the trainer."""
    data = torch.utils.data.TensorDataset(
        torch.randn(32, 3, 4, 4), torch.randint(0, 3, (32,))
    )
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=4,
        collate_fn=lambda b: {
            "images": torch.stack([x for x, _ in b]),
            "labels": torch.stack([y for _, y in b]),
        },
    )
    trainer = quiet_trainer(max_epochs=max_epochs)
    trainer.fit(model, train_dataloaders=loader)
    return trainer


def test_configured_optimizer_and_schedule_are_used_per_step() -> None:
    model = _Tiny(
        num_classes=3,
        optimizer=functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9),
        scheduler=functools.partial(warmup_cosine, warmup_epochs=1.0, min_lr_ratio=0.1),
    )
    trainer = _fit(model)
    (optimizer,) = trainer.optimizers
    assert isinstance(optimizer, torch.optim.SGD)
    assert trainer.global_step == 16
    # Stepped per optimizer step: 16 steps end exactly at the floor.
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_training_without_an_optimizer_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="optimizer="):
        _fit(_Tiny(num_classes=3))


def test_schedule_needs_a_finite_run() -> None:
    model = _Tiny(
        num_classes=3,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        scheduler=functools.partial(warmup_cosine, warmup_epochs=0, min_lr_ratio=0),
    )
    with pytest.raises(ConfigError, match="max_epochs"):
        _fit(model, max_epochs=-1)


def test_per_class_accuracy_skips_classes_absent_from_the_split() -> None:
    model = _Tiny(num_classes=3, class_names=["", "7", "23"])
    with torch.no_grad():  # class "" always wins: right for "", wrong for "7"
        model.network[1].weight.zero_()
        model.network[1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    labels = torch.tensor([0, 0, 1, 1, 1])  # no "23" in this split
    loader = torch.utils.data.DataLoader(
        [{"images": torch.randn(3, 4, 4), "labels": y} for y in labels], batch_size=2
    )
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.validate(model, loader, verbose=False)
    metrics = trainer.callback_metrics
    assert metrics["val/acc_class/<empty>"] == pytest.approx(1.0)
    assert metrics["val/acc_class/7"] == pytest.approx(0.0)
    assert "val/acc_class/23" not in metrics  # no support: no number
    assert metrics["val/acc_top1"] == pytest.approx(2 / 5)


def lr_trace(scheduler_factory: functools.partial[object], total: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = scheduler_factory(optimizer, total_steps=total, steps_per_epoch=10.0)
    trace = []
    for _ in range(total):
        trace.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    trace.append(optimizer.param_groups[0]["lr"])  # after the last step
    return trace


def test_warmup_cosine_warms_up_then_ends_exactly_at_the_floor() -> None:
    trace = lr_trace(
        functools.partial(warmup_cosine, warmup_epochs=1.0, min_lr_ratio=0.01), 100
    )
    assert trace[0] == pytest.approx(WARMUP_START_FACTOR)
    assert trace[10] == pytest.approx(1.0)
    warmup, decay = trace[:11], trace[10:]
    assert all(a <= b for a, b in itertools.pairwise(warmup))
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(decay))
    assert trace[-1] == pytest.approx(0.01)
    assert trace[55] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)


def test_schedule_without_warmup_is_pure_cosine() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = build_warmup_cosine(optimizer, 20, 0, 0.01)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_step_schedule_decays_every_step_epochs() -> None:
    trace = lr_trace(
        functools.partial(step_decay, warmup_epochs=0.0, step_epochs=2.0, gamma=0.5),
        60,
    )
    assert trace[19] == pytest.approx(1.0)
    assert trace[20] == pytest.approx(0.5)
    assert trace[40] == pytest.approx(0.25)


def test_onecycle_peaks_after_warmup_at_the_optimizer_rate() -> None:
    trace = lr_trace(
        functools.partial(
            one_cycle, warmup_epochs=2.0, div_factor=25.0, final_div_factor=100.0
        ),
        100,
    )
    assert trace[0] == pytest.approx(1.0 / 25)
    assert max(trace) == pytest.approx(1.0)
    assert trace.index(max(trace)) == 20 - 1
    assert trace[-2] == pytest.approx(1.0 / 25 / 100, rel=1e-3)


# -- the schedule and metrics of a real (tiny) fit ------------------------------------
class TinyLinearModel(BaseClassificationModel):
    """The project's training logic around a one-layer network (fast on CPU)."""

    def build_network(self, num_classes: int) -> nn.Module:
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

    def build_network(self, num_classes: int) -> nn.Module:
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
    return quiet_trainer(max_epochs=max_epochs, callbacks=callbacks)


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
        optimizer=functools.partial(torch.optim.AdamW, lr=peak),
        scheduler=functools.partial(
            warmup_cosine, warmup_epochs=warmup_epochs, min_lr_ratio=floor_ratio
        ),
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
    model = KnownLogitsModel(
        num_classes=7, optimizer=functools.partial(torch.optim.SGD, lr=0.1)
    )
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
