"""Every root config composes, validates and instantiates; override keys exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from classifier_training.config import DegradationsConfig, load_data_config
from classifier_training.train import (
    build_callbacks,
    build_loggers,
    resolve_data_values,
)

ROOT_CONFIGS = [
    "train_demo",
    "train_jersey_ocr_resnet18",
    "train_jersey_ocr_resnet18_local",
]
USER_KEYS = [
    "data.data_root", "data.batch_size", "data.num_workers", "data.image_size",
    "data.sampler.mode", "model.pretrained", "model.weights_path",
    "optimizer.lr", "optimizer.weight_decay", "scheduler.warmup_epochs",
    "model.arch", "model.label_smoothing", "trainer.max_epochs",
    "trainer.accelerator", "trainer.precision",
]  # fmt: skip


@pytest.fixture(autouse=True)
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def compose_root(name: str, tmp_path: Path, *overrides: str) -> DictConfig:
    return compose(
        config_name=name,
        overrides=[
            f"paths.output_dir={tmp_path}",
            f"data.data_root={tmp_path}",
            *overrides,
        ],
    )


@pytest.mark.parametrize("name", ROOT_CONFIGS)
def test_root_config_composes_and_validates(name: str, tmp_path: Path) -> None:
    cfg = compose_root(name, tmp_path)
    absent = object()
    for key in USER_KEYS:
        value = OmegaConf.select(cfg, key, default=absent, throw_on_missing=False)
        assert value is not absent, f"{key} is not in the composed config"
        if key == "model.weights_path":
            assert value is None, key  # present, off by default
        else:
            assert value is not None, key
    assert OmegaConf.select(cfg, "model.no_such_key", default=absent) is absent
    config = load_data_config(resolve_data_values(cfg))
    assert config.image_size == cfg.data.image_size
    assert config.transforms.hue == cfg.data.transforms.hue
    assert cfg.model._target_.endswith(".ResNet18ClassificationModel")
    assert cfg.model.arch == "resnet18"


@pytest.mark.parametrize("name", ROOT_CONFIGS)
def test_root_config_instantiates_trainer_callbacks_loggers(
    name: str, tmp_path: Path
) -> None:
    cfg = compose_root(
        name, tmp_path, "trainer.accelerator=cpu", "trainer.precision=32-true"
    )
    callbacks = build_callbacks(cfg)
    assert any(isinstance(c, ModelCheckpoint) for c in callbacks)
    assert any(isinstance(c, EarlyStopping) for c in callbacks)
    loggers = build_loggers(cfg)
    assert isinstance(loggers[0], CSVLogger)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert trainer.max_epochs == cfg.trainer.max_epochs


def test_recipes_differ_where_they_should(tmp_path: Path) -> None:
    gpu = compose_root("train_jersey_ocr_resnet18", tmp_path)
    local = compose_root("train_jersey_ocr_resnet18_local", tmp_path)
    demo = compose_root("train_demo", tmp_path)
    assert (gpu.trainer.accelerator, gpu.trainer.precision) == ("gpu", "bf16-mixed")
    assert gpu.model.pretrained is True
    assert gpu.data.image_size == 224
    # The CPU here; MPS on Apple silicon, where the loaders drop their workers.
    assert local.trainer.accelerator == "auto"
    assert local.model.pretrained is True
    assert gpu.model.compile is False  # until measured on a GPU
    assert gpu.model.channels_last is None  # on, on CUDA
    assert demo.trainer.accelerator == "cpu"
    assert demo.model.pretrained is False
    assert demo.data.data_root == str(tmp_path)
    assert demo.trainer.deterministic is True


def test_demo_points_at_the_synthetic_dataset() -> None:
    cfg = compose(config_name="train_demo")
    assert cfg.data.data_root == "data/synthetic-jersey"


def test_jersey_recipe_requires_a_data_root() -> None:
    cfg = compose(config_name="train_jersey_ocr_resnet18")
    assert OmegaConf.is_missing(cfg.data, "data_root")


def test_model_group_switches_architecture(tmp_path: Path) -> None:
    cfg = compose_root("train_demo", tmp_path, "model=resnet50", "optimizer.lr=3e-4")
    assert cfg.model.arch == "resnet50"
    assert cfg.optimizer.lr == 3e-4
    assert cfg.model.pretrained is False  # the demo's setting survives the switch


@pytest.mark.parametrize(
    "override",
    ["data.batch_sise=3", "model.learnin_rate=1", "optimizer.lrr=1", "trainer.foo=1"],
)
def test_unknown_keys_are_errors_naming_the_key(override: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose_root("train_demo", tmp_path, override)
    key = override.split("=")[0].split(".")[-1]
    assert key in str(info.value.__cause__ or info.value)


def test_logging_groups(tmp_path: Path) -> None:
    assert build_loggers(compose_root("train_demo", tmp_path, "logging=none")) == []
    cfg = compose_root("train_demo", tmp_path, "logging=wandb")
    assert set(cfg.logging) == {"csv", "wandb"}


def test_callbacks_can_be_switched_off(tmp_path: Path) -> None:
    cfg = compose_root("train_demo", tmp_path, "callbacks.early_stopping=null")
    assert not any(isinstance(c, EarlyStopping) for c in build_callbacks(cfg))
    cfg = compose_root("train_demo", tmp_path, "~callbacks.lr_monitor")
    assert "lr_monitor" not in cfg.callbacks
    cfg = compose_root("train_demo", tmp_path, "callbacks=none")
    assert set(cfg.callbacks) == {"model_checkpoint", "last_checkpoint"}


def test_without_a_logger_the_lr_monitor_is_left_out(tmp_path: Path) -> None:
    cfg = compose_root("train_demo", tmp_path, "logging=none")
    with_logger = build_callbacks(cfg)
    without = build_callbacks(cfg, with_loggers=False)
    assert any(isinstance(c, LearningRateMonitor) for c in with_logger)
    assert not any(isinstance(c, LearningRateMonitor) for c in without)
    assert len(without) == len(with_logger) - 1


def test_switching_the_optimizer_keeps_the_recipe_learning_rate(
    tmp_path: Path,
) -> None:
    cfg = compose_root("train_demo", tmp_path, "optimizer=sgd", "scheduler=step")
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert cfg.optimizer.nesterov is True
    assert cfg.optimizer.lr == 2e-3  # the demo's, set once in the recipe
    assert cfg.scheduler.warmup_epochs == 0.5


def test_transforms_group_switches_augmentation(tmp_path: Path) -> None:
    digits = compose_root("train_demo", tmp_path)
    natural = compose_root("train_demo", tmp_path, "transforms=natural")
    assert digits.data.transforms.horizontal_flip_p == 0.0
    assert natural.data.transforms.horizontal_flip_p == 0.5
    assert natural.data.transforms.hue == 0.0  # TrivialAugment covers colour
    broadcast = compose_root("train_demo", tmp_path, "transforms=broadcast")
    assert broadcast.data.transforms.hue == digits.data.transforms.hue  # inherited
    assert broadcast.data.transforms.degradations.jpeg.p > 0
    tuned = compose_root("train_demo", tmp_path, "data.transforms.hue=0.2")
    assert load_data_config(resolve_data_values(tuned)).transforms.hue == 0.2


def test_degradations_are_enabled_by_any_positive_probability() -> None:
    assert not DegradationsConfig().enabled
    assert DegradationsConfig(jpeg={"p": 0.1}).enabled
    assert DegradationsConfig(zoom={"p": 1.0}).enabled
