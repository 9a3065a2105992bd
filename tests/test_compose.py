"""Every root config with every option of every group composes and instantiates.

Tiny sizes, no training: the data module is set up on a generated dataset, the
model built, its optimizer and schedule completed, and callbacks, loggers and
trainer instantiated, exactly as ``train.py`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from classifier_training.config import ConfigError, DataModuleConfig, TransformsConfig
from classifier_training.models import ResNet34ClassificationModel
from classifier_training.train import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_model,
)
from classifier_training.training.builders import build_trainer
from tests.helpers import make_jsonl_dataset

CONF = Path(__file__).resolve().parents[1] / "src/classifier_training/conf"
ROOT_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
GROUPS = (
    "model",
    "data",
    "transforms",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "logging",
)


@pytest.fixture(autouse=True)
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jsonl_dataset(
        tmp_path_factory.mktemp("compose") / "data", per_class=2, size=16
    )


def group_options(group: str) -> list[str]:
    loader = GlobalHydra.instance().config_loader()
    return sorted(loader.get_group_options(group))


def test_every_group_has_its_options() -> None:
    assert ROOT_CONFIGS == [
        "train_demo",
        "train_jersey_ocr_resnet18",
        "train_jersey_ocr_resnet18_local",
    ]
    assert {"resnet18", "resnet34", "resnet50", "image_classifier"} <= set(
        group_options("model")
    )
    assert {"adamw", "sgd"} <= set(group_options("optimizer"))
    assert {"warmup_cosine", "step", "onecycle"} <= set(group_options("scheduler"))
    assert {"digits", "natural", "none"} <= set(group_options("transforms"))
    assert {"default", "none", "ema", "model_checkpoint"} <= set(
        group_options("callbacks")
    )


def instantiate_all(cfg: DictConfig) -> None:
    """Build every object of the run as ``train.py`` does (no fitting)."""
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    assert model.optimizer_factory is not None
    assert model.scheduler_factory is not None
    optimizer = model.optimizer_factory(model.parameter_groups())
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    scheduler = model.scheduler_factory(optimizer, total_steps=20, steps_per_epoch=4)
    for _ in range(20):
        optimizer.step()
        scheduler.step()
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, with_loggers=bool(loggers))
    if not loggers:
        assert not any(isinstance(c, LearningRateMonitor) for c in callbacks)
    trainer = build_trainer(cfg, callbacks, loggers)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.slow
@pytest.mark.parametrize("root", ROOT_CONFIGS)
def test_every_option_of_every_group_instantiates(
    root: str, data_root: Path, tmp_path: Path
) -> None:
    tiny = [
        f"data.data_root={data_root}",
        "data.image_size=16",
        "data.num_workers=0",
        f"paths.output_dir={tmp_path}",
        "model.pretrained=false",
    ]
    if not torch.cuda.is_available():
        tiny.append("trainer.accelerator=cpu")
    done = []
    for group in GROUPS:
        for option in group_options(group):
            cfg = compose(root, overrides=[f"{group}={option}", *tiny])
            instantiate_all(cfg)
            done.append(f"{group}={option}")
    assert len(done) >= 25, done


def test_model_arch_switches_any_model_option(data_root: Path, tmp_path: Path) -> None:
    for option in ("resnet18", "resnet50"):
        cfg = compose(
            "train_demo",
            overrides=[
                f"model={option}",
                "model.arch=mobilenet_v3_small",
                f"data.data_root={data_root}",
                "data.image_size=32",
                "data.num_workers=0",
                f"paths.output_dir={tmp_path}",
            ],
        )
        model = build_model(cfg, build_datamodule(cfg))
        assert model.hparams["arch"] == "mobilenet_v3_small"
        assert type(model.network).__name__ == "MobileNetV3"


def test_model_settings_reach_the_seed_class_and_are_checked(
    data_root: Path, tmp_path: Path
) -> None:
    base = [
        f"data.data_root={data_root}",
        "data.image_size=32",
        "data.num_workers=0",
        f"paths.output_dir={tmp_path}",
    ]
    default = compose("train_demo", overrides=base)
    assert default.model._target_.endswith(".ResNet18ClassificationModel")
    datamodule = build_datamodule(default)
    cfg = compose(
        "train_demo",
        overrides=[
            *base,
            "model=resnet34",
            "model.label_smoothing=0.0",
            "model.mixup_alpha=0.2",
        ],
    )
    model = build_model(cfg, datamodule)
    assert type(model) is ResNet34ClassificationModel
    assert (model.settings.arch, model.settings.pretrained) == ("resnet34", False)
    assert model.settings.label_smoothing == 0.0
    assert model.settings.mixup_alpha == 0.2
    bad = compose("train_demo", overrides=[*base, "model.label_smoothing=2"])
    with pytest.raises(ConfigError) as raised:
        build_model(bad, datamodule)
    assert str(raised.value).startswith("model.label_smoothing: ")
    assert "\n" not in str(raised.value)


def test_unset_normalisation_is_the_models_own(data_root: Path, tmp_path: Path) -> None:
    base = [f"data.data_root={data_root}", f"paths.output_dir={tmp_path}"]
    timm = compose("train_demo", overrides=[*base, "model.arch=timm/test_vit"])
    assert timm.data.mean is None
    assert build_datamodule(timm).config.mean == (0.5, 0.5, 0.5)
    tv = compose("train_demo", overrides=base)
    assert build_datamodule(tv).config.mean == (0.485, 0.456, 0.406)
    chosen = compose("train_demo", overrides=[*base, "data.mean=[0.1,0.2,0.3]"])
    assert build_datamodule(chosen).config.mean == (0.1, 0.2, 0.3)


def _keys_set_by(path: Path, section: str) -> set[str]:
    loaded = yaml.safe_load(path.read_text()) or {}
    return set((loaded.get(section) or {}).keys())


def _preset_keys(preset: str) -> dict[str, Any]:
    """What a transforms preset file sets (``digits`` is the code's defaults)."""
    if preset == "digits":
        return {}
    loaded = yaml.safe_load((CONF / "transforms" / f"{preset}.yaml").read_text())
    loaded.pop("defaults", None)
    return dict(loaded)


def test_each_data_default_lives_in_the_code_only(tmp_path: Path) -> None:
    # The group files set nothing the code already defaults ...
    for path in (CONF / "data").glob("*.yaml"):
        loaded = yaml.safe_load(path.read_text())
        assert set(loaded) <= {"defaults", "data_root"}, path
    # ... and the composed values are the code's wherever no recipe sets them.
    recipe_keys = set().union(
        *(_keys_set_by(CONF / f"{name}.yaml", "data") for name in ROOT_CONFIGS)
    )
    code = DataModuleConfig(data_root=tmp_path)
    for name in ROOT_CONFIGS:
        cfg = compose(name, overrides=[f"data.data_root={tmp_path}"])
        for key in set(DataModuleConfig.model_fields) - recipe_keys:
            if key in ("data_root", "mean", "std", "transforms"):
                continue
            expected = getattr(code, key)
            value = cfg.data[key]
            if hasattr(expected, "model_dump"):
                expected = expected.model_dump()
            assert value == expected, (name, key)
        # The preset a recipe picks is a file of the transforms group, applied
        # over the code's defaults (the demo: digits; the jersey recipes: broadcast).
        preset = "digits" if name == "train_demo" else "broadcast"
        # JSON mode: tuples become lists, as OmegaConf stores them.
        expected = TransformsConfig(**_preset_keys(preset)).model_dump(mode="json")
        assert OmegaConf.to_container(cfg.data.transforms) == expected, name


def test_the_demo_keeps_its_numbers() -> None:
    cfg = compose("train_demo")
    assert cfg.data.image_size == 40
    assert cfg.data.batch_size == 64
    assert cfg.data.num_workers == 2
    assert cfg.trainer.max_epochs == 8
    assert cfg.optimizer.lr == 2e-3
    assert cfg.scheduler.warmup_epochs == 0.5
    assert cfg.model.pretrained is False
    assert cfg.trainer.accelerator == "cpu"
