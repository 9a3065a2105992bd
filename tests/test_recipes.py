"""Augmentation options and the presets of the ``transforms`` group (workers path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image
from torchvision.transforms import v2

from classifier_training.config import (
    ConfigError,
    DataModuleConfig,
    load_data_config,
)
from classifier_training.core.preprocessing import mean_fill
from classifier_training.data.augmentations import workers_only_keys
from classifier_training.data.degradations import RandomDownUpScale, ViaUint8
from classifier_training.data.transforms import build_train_transform
from classifier_training.train import resolve_data_values
from tests.helpers import quiet_trainer

PRESETS = ("digits", "broadcast", "natural", "none")


def preset_config(name: str, *overrides: str) -> DataModuleConfig:
    """The validated data config of the demo recipe with ``transforms=name``."""
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(
            config_name="train_demo",
            overrides=["data.data_root=/x", f"transforms={name}", *overrides],
        )
    return load_data_config(resolve_data_values(cfg))


def data_config(**transforms: Any) -> DataModuleConfig:
    return load_data_config(
        {"data_root": "/x", "image_size": 32, "transforms": transforms}
    )


def flat_ops(compose_: v2.Compose) -> list[Any]:
    """The steps of a Compose, nested Composes (the degradations) flattened."""
    ops: list[Any] = []
    for op in compose_.transforms:
        ops += flat_ops(op) if isinstance(op, v2.Compose) else [op]
    return ops


def noise_image(size: int = 32, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def test_digits_preset_matches_its_hand_written_pipeline() -> None:
    """The digits preset's pipeline, written out by hand with torchvision: same
    random draws, same pixels."""
    config = preset_config("digits")
    fill = list(mean_fill(config.mean))
    before = v2.Compose(
        [
            v2.RandomAffine(
                degrees=8.0,
                translate=(0.06, 0.06),
                scale=(0.9, 1.1),
                shear=5.0,
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=fill,
            ),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.05),
            v2.RandomGrayscale(p=0.05),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ]
    )
    now = build_train_transform(config)
    image = noise_image(40)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = before(image)
        torch.manual_seed(seed)
        assert torch.equal(now(image), expected)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_composes_and_runs(name: str) -> None:
    config = preset_config(name, "data.image_size=32")
    out = build_train_transform(config)(noise_image(32))
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32


def test_presets_hold_their_operations() -> None:
    kinds = {
        name: [type(op) for op in flat_ops(build_train_transform(preset_config(name)))]
        for name in PRESETS
    }
    natural = kinds["natural"]
    for kind in (
        v2.RandomHorizontalFlip,
        v2.RandomResizedCrop,
        v2.TrivialAugmentWide,
        v2.RandomErasing,
    ):
        assert kind in natural
    assert v2.RandomAffine not in natural
    assert v2.ColorJitter not in natural
    assert kinds["none"] == [v2.ToImage, v2.ToDtype, v2.Normalize]
    broadcast = kinds["broadcast"]
    assert broadcast[: len(kinds["digits"]) - 3] == kinds["digits"][:-3]
    # Degradations after geometry and colour, before ToImage/Normalize.
    degradations = broadcast[len(kinds["digits"]) - 3 : -3]
    assert v2.RandomApply in degradations
    # Down-scale, blur, noise, JPEG (motion blur and zoom are off in the preset).
    assert len(degradations) == 4
    assert broadcast[-3:] == [v2.ToImage, v2.ToDtype, v2.Normalize]
    spec = preset_config("broadcast").transforms.degradations
    assert spec.jpeg.p > 0
    assert spec.downscale.p > 0
    assert spec.zoom.p == 0
    assert spec.motion_blur.p == 0


def test_auto_augment_options_and_magnitude() -> None:
    rand = flat_ops(build_train_transform(data_config(auto_augment="randaugment")))
    (policy,) = [op for op in rand if isinstance(op, v2.RandAugment)]
    assert policy.magnitude == 9  # torchvision's default
    rand = flat_ops(
        build_train_transform(
            data_config(auto_augment="randaugment", auto_augment_magnitude=15)
        )
    )
    assert [op.magnitude for op in rand if isinstance(op, v2.RandAugment)] == [15]
    mix = flat_ops(
        build_train_transform(
            data_config(auto_augment="augmix", auto_augment_magnitude=5)
        )
    )
    assert [op.severity for op in mix if isinstance(op, v2.AugMix)] == [5]
    image = noise_image(32)
    for policy_name in ("randaugment", "trivialaugment", "augmix"):
        transform = build_train_transform(data_config(auto_augment=policy_name))
        assert transform(image).shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"auto_augment": "trivialaugment", "auto_augment_magnitude": 5}, "null"),
        ({"auto_augment": "augmix", "auto_augment_magnitude": 11}, "severity"),
        ({"auto_augment": "autoaugment"}, "data.transforms.auto_augment"),
        ({"crop_scale": [0.5, 1.5]}, "crop_scale"),
        ({"crop_ratio": [2.0, 1.0]}, "crop_ratio"),
        ({"degradations": {"jpeg": {"p": 2.0}}}, "data.transforms.degradations"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        data_config(**values)


def test_random_resized_crop_zooms_in() -> None:
    """A horizontal ramp cropped to a quarter of the area (half the side) and
    scaled back: the ramp gets twice as steep."""
    ramp = np.tile((np.arange(32) * 4).astype(np.uint8), (32, 1))
    image = Image.fromarray(np.stack([ramp] * 3, axis=-1), mode="RGB")
    config = data_config(
        crop_scale=[0.25, 0.25],
        crop_ratio=[1.0, 1.0],
        rotation_degrees=0,
        translate=0,
        scale=[1, 1],
        shear_degrees=0,
        brightness=0,
        contrast=0,
        saturation=0,
        hue=0,
        grayscale_p=0,
    )
    torch.manual_seed(0)
    out = build_train_transform(config)(image)
    pixels = out[0] * config.std[0] + config.mean[0]  # back to [0, 1]
    slope = (pixels[:, 24] - pixels[:, 8]).mean() * 255 / 16
    assert slope == pytest.approx(2.0, abs=0.1)


def test_degradations_run_in_the_training_pipeline() -> None:
    """JPEG at quality 1 and a 4x down-up-scale always on: the training image is
    visibly degraded, the plain pipeline's is not."""
    plain = data_config(grayscale_p=0)
    degraded = data_config(
        grayscale_p=0,
        degradations={
            "downscale": {"p": 1.0, "scale": [0.25, 0.25]},
            "jpeg": {"p": 1.0, "quality": [1, 1]},
        },
    )
    ops = flat_ops(build_train_transform(degraded))
    assert any(isinstance(op, RandomDownUpScale) for op in ops)
    assert any(isinstance(op, ViaUint8) for op in ops)
    image = noise_image(32)
    torch.manual_seed(0)
    a = build_train_transform(plain)(image)
    torch.manual_seed(0)
    b = build_train_transform(degraded)(image)
    # Noise loses its high frequencies: neighbouring pixels become alike.
    assert (b[:, :, 1:] - b[:, :, :-1]).abs().mean() < 0.5 * (
        a[:, :, 1:] - a[:, :, :-1]
    ).abs().mean()


def test_workers_only_keys_name_what_a_device_path_must_refuse() -> None:
    # Only the auto-augment policies: the device path has every other step.
    for name in ("digits", "none", "broadcast"):
        assert workers_only_keys(preset_config(name).transforms) == []
    assert workers_only_keys(preset_config("natural").transforms) == [
        "data.transforms.auto_augment",
    ]


def test_augmentation_preview_shows_mixed_targets(tmp_path: Path) -> None:
    """With CutMix on, the preview's tiles carry two classes with their shares,
    like the batches training sees (one real, tiny fit)."""

    from classifier_training.callbacks import AugmentationPreviewCallback
    from classifier_training.data.datamodule import ImageFolderDataModule
    from classifier_training.models.classifier import ImageClassifier
    from tests.helpers import make_jsonl_dataset

    data = make_jsonl_dataset(tmp_path / "data", ("", "7", "23", "5"), per_class=3)
    datamodule = ImageFolderDataModule(
        load_data_config({"data_root": str(data), "image_size": 24, "batch_size": 4}),
        arch="resnet18",
    )
    datamodule.setup("fit")
    model = ImageClassifier(
        datamodule.num_classes,
        class_names=datamodule.class_names,
        pretrained=False,
        optimizer=lambda groups: torch.optim.SGD(groups, lr=0.01),
        cutmix_alpha=1.0,
    )
    preview = AugmentationPreviewCallback(tmp_path / "run", num_draws=4)
    trainer = quiet_trainer(
        max_epochs=1, limit_train_batches=1, limit_val_batches=0, callbacks=[preview]
    )
    trainer.fit(model, datamodule=datamodule)
    assert (tmp_path / "run/augmentation_preview.png").is_file()
    rows = preview.preview_rows(trainer, model, epoch=0)  # as at fit start
    tiles = [tile for _, draws in rows for tile in draws]
    assert len(tiles) == 8 * 4
    mixed = [tile.target for tile in tiles if len(tile.target) == 2]
    assert mixed
    for target in mixed:
        assert sum(share for _, share in target) == pytest.approx(1.0, abs=0.02)
