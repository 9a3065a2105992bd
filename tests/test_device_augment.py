"""``data.augment_on``: the batched device path matches the per-image workers path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger
from PIL import Image

from classifier_training.config import (
    ConfigError,
    DataModuleConfig,
    TransformsConfig,
    load_data_config,
)
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.device_transforms import (
    CPU_BATCHED_MAX_SIZE,
    DeviceAugmentation,
    FilledRandomAffine,
    resolve_augment_on,
)
from classifier_training.data.transforms import (
    build_eval_transform,
    build_train_transform,
)
from tests.helpers import make_jsonl_dataset, quiet_trainer

SIZE = 32
NATURAL = TransformsConfig(
    rotation_degrees=10.0,
    translate=0.1,
    scale=(0.8, 1.2),
    horizontal_flip_p=0.5,
    random_erasing_p=0.1,
)
NO_AUGMENTATION = TransformsConfig(
    rotation_degrees=0.0,
    translate=0.0,
    scale=(1.0, 1.0),
    shear_degrees=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
    grayscale_p=0.0,
)


def structured_images(count: int, size: int = SIZE) -> list[Image.Image]:
    """Images with structure everywhere (gradients, a bright bar, colour): so
    geometry and colour changes both show in the statistics."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    images = []
    for _ in range(count):
        colour = rng.uniform(40, 215, size=3)
        slope = rng.uniform(-60, 60, size=(2, 3))
        pixels = colour + xs[..., None] * slope[0] + ys[..., None] * slope[1]
        top, left = rng.integers(0, size // 2, size=2)
        pixels[top : top + size // 3, left : left + size // 6] = rng.uniform(
            0, 255, size=3
        )
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return images


def data_config(aug: TransformsConfig, tmp_path: Path) -> DataModuleConfig:
    return DataModuleConfig(data_root=tmp_path, image_size=SIZE, transforms=aug)


def statistics(out: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Per-image statistics of an augmented batch, summarised over the batch.

    ``clean`` is the un-augmented normalised batch (same images, same order).
    """
    channel_mean = out.mean(dim=(2, 3))
    channel_std = out.std(dim=(2, 3))
    change = (out - clean).abs().mean(dim=(1, 2, 3))
    # Grayscale images have equal channels: their share shows grayscale_p.
    spread = (out * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)).std(dim=1)
    # Geometry moves the pattern; colour changes barely alter its correlation.
    a = out.mean(dim=1).flatten(1)
    b = clean.mean(dim=1).flatten(1)
    a, b = a - a.mean(dim=1, keepdim=True), b - b.mean(dim=1, keepdim=True)
    corr = (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)
    return {
        "decorrelation": float((1 - corr).mean()),
        "mean": float(channel_mean.mean()),
        "mean_spread": float(channel_mean.std()),
        "std": float(channel_std.mean()),
        "std_spread": float(channel_std.std()),
        "change": float(change.mean()),
        "change_spread": float(change.std()),
        "colour": float(spread.mean()),
    }


def workers_path(config: DataModuleConfig, images: list[Image.Image]) -> torch.Tensor:
    transform = build_train_transform(config)
    # One thread, as in a DataLoader worker: the per-image convolutions of the
    # blurs take 100x longer on two threads of a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.stack([transform(image) for image in images])
    finally:
        torch.set_num_threads(threads)


def device_path(config: DataModuleConfig, images: list[Image.Image]) -> torch.Tensor:
    # As training builds it: the colour jitter compiled (data.compile_augmentation).
    module = DeviceAugmentation(
        config.transforms,
        config.mean,
        config.std,
        config.image_size,
        compile=config.compile_augmentation,
    )
    return module(uint8_batch(images))


def uint8_batch(images: list[Image.Image]) -> torch.Tensor:
    """PIL images as the ``uint8`` ``N x 3 x H x W`` batch the device path gets."""
    batch = torch.stack([torch.from_numpy(np.asarray(im).copy()) for im in images])
    return batch.permute(0, 3, 1, 2).contiguous()


def clean_batch(config: DataModuleConfig, images: list[Image.Image]) -> torch.Tensor:
    transform = build_eval_transform(config)
    return torch.stack([transform(image) for image in images])


def compare(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Difference per statistic, relative to the workers' value or, for a batch
    average, to its spread over the batch (whichever is larger)."""
    return {
        k: abs(a[k] - b[k]) / max(abs(a[k]), a.get(f"{k}_spread", 0.0), 0.05) for k in a
    }


# Calibrated on 4 x 64 images: the two paths differ by < 0.10 on every statistic
# (digits and natural); switching colour jitter or geometry off on the device
# path moves one by ~0.6.
TOLERANCE = 0.15


#: ``broadcast``'s degradations on ``digits``, plus a random-resized crop: the
#: whole chain runs and agrees. These statistics barely see the degradations
#: (dropping them moves one by 0.05); the per-operation tests below do.
BROADCAST = TransformsConfig(
    crop_scale=(0.5, 1.0),
    degradations={
        "downscale": {"p": 0.25, "scale": (0.4, 0.8)},
        "gaussian_blur": {"p": 0.15, "sigma": (0.3, 1.0)},
        "noise": {"p": 0.15, "sigma": (0.01, 0.04)},
        "jpeg": {"p": 0.25, "quality": (20, 70)},
    },
)


@pytest.mark.parametrize(
    "aug",
    [TransformsConfig(), NATURAL, BROADCAST],
    ids=["digits", "natural", "broadcast"],
)
def test_both_paths_have_matching_statistics(
    aug: TransformsConfig, tmp_path: Path
) -> None:
    config = data_config(aug, tmp_path)
    images = structured_images(64) * 4
    clean = clean_batch(config, images)
    torch.manual_seed(0)
    workers = statistics(workers_path(config, images), clean)
    torch.manual_seed(1)
    device = statistics(device_path(config, images), clean)
    gaps = compare(workers, device)
    assert max(gaps.values()) < TOLERANCE, (workers, device, gaps)


@pytest.mark.parametrize(
    "changed",
    [
        {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0},
        {"rotation_degrees": 0.0, "translate": 0.0, "scale": (1.0, 1.0)},
    ],
    ids=["no-colour-jitter", "no-geometry"],
)
def test_the_statistics_see_a_missing_augmentation(
    changed: dict[str, Any], tmp_path: Path
) -> None:
    # The comparison above can fail: a device path that drops an augmentation
    # is told apart from the workers path.
    config = data_config(TransformsConfig(), tmp_path)
    weaker = data_config(TransformsConfig(**changed), tmp_path)
    images = structured_images(64) * 4
    clean = clean_batch(config, images)
    torch.manual_seed(0)
    workers = statistics(workers_path(config, images), clean)
    torch.manual_seed(1)
    device = statistics(device_path(weaker, images), clean)
    gaps = compare(workers, device)
    assert max(gaps.values()) > 2 * TOLERANCE


def test_parameters_are_drawn_per_sample(tmp_path: Path) -> None:
    config = data_config(TransformsConfig(), tmp_path)
    out = device_path(config, structured_images(1) * 8)
    assert out.shape == (8, 3, SIZE, SIZE)
    assert out.dtype == torch.float32
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 8))


def test_without_augmentation_the_device_path_is_the_eval_preprocessing(
    tmp_path: Path,
) -> None:
    images = structured_images(8)
    for aug in (NO_AUGMENTATION, TransformsConfig()):
        config = data_config(aug, tmp_path)
        expected = clean_batch(config, images)
        module = DeviceAugmentation(
            config.transforms, config.mean, config.std, config.image_size
        )
        out = module(uint8_batch(images), augment=False)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    unaugmented = device_path(data_config(NO_AUGMENTATION, tmp_path), images)
    torch.testing.assert_close(unaugmented, expected, atol=1e-5, rtol=0)


def test_compiled_colour_jitter_gives_the_uncompiled_result() -> None:
    batch = uint8_batch(structured_images(64))
    outputs = []
    clean = DeviceAugmentation(TransformsConfig(), IMAGENET_MEAN, IMAGENET_STD)(
        batch, augment=False
    )
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        for compiled in (False, True):
            module = DeviceAugmentation(
                TransformsConfig(), IMAGENET_MEAN, IMAGENET_STD, compile=compiled
            )
            torch.manual_seed(3)
            outputs.append([module(batch) for _ in range(2)])  # compiles, then runs
    finally:
        logger.remove(sink)
    assert warnings == []  # compiled, no fall-back
    for eager, compiled_out in zip(*outputs, strict=True):
        assert (eager - clean).abs().mean() > 0.01  # the batch was augmented
        torch.testing.assert_close(compiled_out, eager, atol=1e-4, rtol=1e-4)


def test_failed_augmentation_compile_warns_and_runs_uncompiled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kornia.augmentation as K

    def failing_backend(graph: Any, example_inputs: Any) -> Any:
        raise RuntimeError("no C++ compiler found\nsecond line")

    compile_jitter = K.ColorJitter.compile
    monkeypatch.setattr(
        K.ColorJitter,
        "compile",
        lambda self: compile_jitter(self, backend=failing_backend),
    )
    module = DeviceAugmentation(
        TransformsConfig(), IMAGENET_MEAN, IMAGENET_STD, compile=True
    )
    batch = uint8_batch(structured_images(8))
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    try:
        first, second = module(batch), module(batch)
    finally:
        logger.remove(sink)
        torch._dynamo.reset()
    assert len(messages) == 1  # once, on the first batch
    assert "torch.compile failed" in messages[0]
    assert "RuntimeError: no C++ compiler found" in messages[0]
    assert "second line" not in messages[0]
    assert "data.compile_augmentation=false" in messages[0]
    for out in (first, second):
        assert out.shape == batch.shape
        assert torch.isfinite(out).all()
    clean = module(batch, augment=False)
    assert (first - clean).abs().mean() > 0.01  # still augmented


def test_data_compile_augmentation_reaches_the_device_path(tmp_path: Path) -> None:
    for setting in (True, False):
        config = DataModuleConfig(
            data_root=tmp_path, image_size=SIZE, compile_augmentation=setting
        )
        dm = ImageFolderDataModule(config, arch="resnet18", accelerator="cpu")
        assert dm.device_augmentation is not None
        assert dm.device_augmentation._compile_pending is setting


@pytest.mark.parametrize(
    ("affine", "least_moved"),
    [
        (  # the digits preset's affine
            {
                "degrees": 8.0,
                "translate": (0.06, 0.06),
                "scale": (0.9, 1.1),
                "shear": 5.0,
                "p": 1.0,
            },
            0.9,
        ),
        ({"degrees": 0.0, "scale": (0.6, 1.4), "p": 0.5}, 0.25),  # the zoom
    ],
)
def test_filled_affine_equals_kornias_fill_mode(
    affine: dict[str, Any], least_moved: float
) -> None:
    import kornia.augmentation as K

    batch = uint8_batch(structured_images(64)).float() / 255
    fill = torch.tensor([0.2, 0.5, 0.9])
    torch.manual_seed(5)
    expected = K.RandomAffine(
        resample="bilinear", padding_mode="fill", fill_value=fill, **affine
    )(batch)
    torch.manual_seed(5)
    out = FilledRandomAffine(fill, **affine)(batch)
    moved = (expected - batch).abs().amax(dim=(1, 2, 3)) > 0.05
    assert moved.float().mean() >= least_moved  # the warp and its fill did happen
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_device_augmentation_refuses_float_batches() -> None:
    module = DeviceAugmentation(TransformsConfig(), IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="uint8"):
        module(torch.zeros(2, 3, 8, 8))


def test_auto_picks_device_on_gpus_and_on_cpus_for_small_images() -> None:
    small, large = CPU_BATCHED_MAX_SIZE, CPU_BATCHED_MAX_SIZE + 1
    digits = TransformsConfig()
    assert resolve_augment_on("auto", "cpu", small, digits) == "device"
    assert resolve_augment_on("auto", "cpu", 40, digits) == "device"
    assert resolve_augment_on("auto", "cpu", large, digits) == "workers"
    assert resolve_augment_on("auto", "cpu", 224, digits) == "workers"
    for gpu in ("gpu", "cuda", "MPS"):
        assert resolve_augment_on("auto", gpu, 224, digits) == "device"
    gpu_here = torch.cuda.is_available() or torch.backends.mps.is_available()
    assert resolve_augment_on("auto", "auto", 224, digits) == (
        "device" if gpu_here else "workers"
    )
    assert resolve_augment_on("workers", "gpu", 40, digits) == "workers"
    assert resolve_augment_on("device", "cpu", 224, digits) == "device"


def test_auto_keeps_degradations_on_cpu_workers_and_policies_on_workers() -> None:
    broadcast = TransformsConfig(degradations={"jpeg": {"p": 0.25}})
    # On a CPU batched JPEG costs more than PIL's (benchmarks/README.md).
    assert resolve_augment_on("auto", "cpu", 40, broadcast) == "workers"
    assert resolve_augment_on("auto", "gpu", 224, broadcast) == "device"
    assert resolve_augment_on("device", "cpu", 40, broadcast) == "device"
    # Off degradations (p = 0) do not count.
    off = TransformsConfig(degradations={"jpeg": {"p": 0.0, "quality": (30, 40)}})
    assert resolve_augment_on("auto", "cpu", 40, off) == "device"
    policy = TransformsConfig(auto_augment="trivialaugment")
    for accelerator in ("cpu", "gpu"):
        assert resolve_augment_on("auto", accelerator, 40, policy) == "workers"


class _RecordingDataModule(ImageFolderDataModule):
    """Keeps the raw train batches as the loader yields them (before the hook)."""

    raw: list[torch.Tensor]

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if batch["images"].dtype == torch.uint8:
            self.raw = [*getattr(self, "raw", []), batch["images"].clone()]
        return batch


def _datamodule(root: Path, **values: Any) -> ImageFolderDataModule:
    settings: dict[str, Any] = {
        "data_root": root,
        "image_size": 24,
        "batch_size": 6,
        "num_workers": 0,
    }
    settings.update(values)
    accelerator = settings.pop("accelerator", "cpu")
    dm = _RecordingDataModule(
        load_data_config(settings), arch="resnet18", accelerator=accelerator
    )
    dm.setup("fit")
    return dm


def test_device_path_loader_serves_uint8_train_and_normalised_eval(
    tmp_path: Path,
) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    dm = _datamodule(root, augment_on="device")
    assert dm.augment_on == "device"
    train = next(iter(dm.train_dataloader()))
    assert train["images"].dtype == torch.uint8
    assert train["images"].shape == (6, 3, 24, 24)
    val = next(iter(dm.val_dataloader()))
    assert val["images"].dtype == torch.float32
    # Outside a training loop the hook only normalises: the eval preprocessing.
    out = dm.on_after_batch_transfer(dict(train), 0)
    expected = DeviceAugmentation(NO_AUGMENTATION, IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(out["images"], expected(train["images"], augment=False))
    assert dm.on_after_batch_transfer(val, 0)["images"] is val["images"]
    workers = _datamodule(root, augment_on="workers")
    assert next(iter(workers.train_dataloader()))["images"].dtype == torch.float32
    assert workers.on_after_batch_transfer(val, 0)["images"] is val["images"]


class _Batches(Callback):
    def __init__(self) -> None:
        self.train: list[torch.Tensor] = []
        self.val: list[torch.Tensor] = []

    def on_train_batch_start(
        self, trainer: Any, module: Any, batch: Any, i: int
    ) -> None:
        self.train.append(batch["images"])

    def on_validation_batch_start(
        self, trainer: Any, module: Any, batch: Any, i: int, dl: int = 0
    ) -> None:
        self.val.append(batch["images"])


def test_training_loop_augments_train_batches_on_the_device(tmp_path: Path) -> None:
    from classifier_training.models import ImageClassifier

    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    dm = _datamodule(root, augment_on="device")
    clean = DeviceAugmentation(NO_AUGMENTATION, IMAGENET_MEAN, IMAGENET_STD)
    model = ImageClassifier(
        num_classes=dm.num_classes,
        arch="resnet18",
        pretrained=False,
        optimizer=lambda groups: torch.optim.SGD(groups, lr=0.01),
    )
    seen = _Batches()
    trainer = quiet_trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[seen]
    )
    trainer.fit(model, datamodule=dm)
    assert len(seen.train) == 2
    for images in seen.train:
        assert images.dtype == torch.float32
        assert images.shape[1:] == (3, 24, 24)
    val_images = next(iter(dm.val_dataloader()))["images"]
    torch.testing.assert_close(seen.val[0], val_images)
    # Augmented, not merely normalised: no train image equals its clean version.
    raw = dm.raw  # type: ignore[attr-defined]
    assert len(raw) == 2
    for images, uint8 in zip(seen.train, raw, strict=True):
        normalised = clean(uint8, augment=False)
        for got, plain in zip(images, normalised, strict=True):
            assert not torch.allclose(got, plain, atol=1e-3)


def test_workers_only_steps_are_refused_on_the_device_path(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    policy = {"auto_augment": "trivialaugment"}
    with pytest.raises(ConfigError, match=r"data\.transforms\.auto_augment"):
        _datamodule(root, augment_on="device", transforms=policy)
    # `auto` on a GPU falls back to the path that has the step.
    dm = _datamodule(root, augment_on="auto", accelerator="gpu", transforms=policy)
    assert dm.augment_on == "workers"
    assert dm.device_augmentation is None
    # Random erasing runs on both paths.
    erasing = _datamodule(
        root, augment_on="device", transforms={"random_erasing_p": 0.5}
    )
    assert erasing.augment_on == "device"


def test_preview_batch_shows_the_device_augmentation(tmp_path: Path) -> None:
    """The augmentation preview reads ``preview_batch``: on the device path it must be
    augmented and normalised there too, not the bare ``uint8`` crops."""
    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    dm = _datamodule(root, augment_on="device")
    torch.manual_seed(0)
    first = dm.preview_batch([0, 1, 2])["images"]
    second = dm.preview_batch([0, 1, 2])["images"]
    assert first.dtype == torch.float32
    assert first.shape == (3, 3, 24, 24)
    assert not torch.equal(first, second)  # a fresh random draw each call
    plain = torch.stack([dm.datasets["train"][i]["images"] for i in (0, 1, 2)])
    normalised = DeviceAugmentation(NO_AUGMENTATION, IMAGENET_MEAN, IMAGENET_STD)
    assert not torch.allclose(first, normalised(plain, augment=False))


# --- Random-resized crop and the broadcast degradations, one at a time ---------
#
# Each case switches on one operation (everything else off) with p < 1, runs a
# fixed batch through both paths and compares (a) the share of samples the
# operation changed, which must be ~p on both, and (b) one statistic of its
# effect, averaged over the changed samples.

NO_AUGMENTATION_VALUES: dict[str, Any] = NO_AUGMENTATION.model_dump(
    exclude={"degradations"}
)
COUNT = 1024
P = 0.5


def coordinate_images(count: int, size: int = SIZE) -> list[Image.Image]:
    """Red grows with x, green with y: the slopes measure a zoom or a crop."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    pixels = np.stack([30 + 195 * xs, 30 + 195 * ys, 128 + 0 * xs], axis=-1)
    return [Image.fromarray(pixels.round().astype(np.uint8))] * count


def textured_images(count: int, size: int = SIZE) -> list[Image.Image]:
    """:func:`structured_images` with a grey texture of 2-pixel blocks: fine
    detail that the blurs and the down-scaling visibly remove."""
    rng = np.random.default_rng(1)
    images = []
    for image in structured_images(count, size):
        blocks = rng.uniform(-50, 50, size=(size // 2, size // 2, 1))
        texture = blocks.repeat(2, axis=0).repeat(2, axis=1)
        pixels = np.asarray(image).astype(np.float32) + texture
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return images


def _unit(batch: torch.Tensor) -> torch.Tensor:
    """Normalised batch back on the ``[0, 1]`` scale."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return batch * std + mean


def _high_frequency(x: torch.Tensor) -> torch.Tensor:
    """Per image: mean absolute Laplacian of the grey image (fine detail)."""
    grey = x.mean(dim=1)
    lap = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    return lap.abs().mean(dim=(1, 2))


def _slopes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: mean red slope along x and green slope along y, centre half."""
    q = x.shape[-1] // 4
    centre = x[..., q:-q, q:-q]
    sx = (centre[:, 0, :, 1:] - centre[:, 0, :, :-1]).mean(dim=(1, 2))
    sy = (centre[:, 1, 1:, :] - centre[:, 1, :-1, :]).mean(dim=(1, 2))
    return sx, sy


def high_frequency_ratio(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Blurs and down-scaling remove fine detail: < 1, lower when stronger."""
    return _high_frequency(out) / _high_frequency(clean)


def residual_std(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Noise: the standard deviation of what was added (sigma)."""
    return (out - clean).std(dim=(1, 2, 3))


def mean_abs_difference(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """JPEG: how far compression moved the pixels."""
    return (out - clean).abs().mean(dim=(1, 2, 3))


def zoom_amount(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Zoom: ``|log factor|``, from the slope of the coordinate colours."""
    sx, sy = _slopes(out)
    cx, cy = _slopes(clean)
    return (0.5 * (sx / cx + sy / cy)).log().abs()


def crop_area(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Random-resized crop: the cropped share of the image area (a crop of
    width ``w`` stretched to the full width flattens the slope by ``w``)."""
    sx, sy = _slopes(out)
    cx, cy = _slopes(clean)
    return (sx / cx) * (sy / cy)


#: name -> (transforms values, the same with a wrong range, statistic, images).
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], Any, Any]] = {
    "crop": (
        {"crop_scale": (0.25, 1.0), "crop_ratio": (0.75, 1.3333)},
        {"crop_scale": (0.5, 1.0), "crop_ratio": (0.75, 1.3333)},
        crop_area,
        coordinate_images,
    ),
    "zoom": (
        {"degradations": {"zoom": {"p": P, "scale": (0.7, 1.3)}}},
        {"degradations": {"zoom": {"p": P, "scale": (0.85, 1.15)}}},
        zoom_amount,
        coordinate_images,
    ),
    "downscale": (
        {"degradations": {"downscale": {"p": P, "scale": (0.4, 0.8)}}},
        {"degradations": {"downscale": {"p": P, "scale": (0.6, 0.9)}}},
        high_frequency_ratio,
        textured_images,
    ),
    "motion_blur": (
        {"degradations": {"motion_blur": {"p": P, "length": (3, 7)}}},
        {"degradations": {"motion_blur": {"p": P, "length": (3, 3)}}},
        high_frequency_ratio,
        textured_images,
    ),
    "gaussian_blur": (
        {"degradations": {"gaussian_blur": {"p": P, "sigma": (0.5, 1.5)}}},
        {"degradations": {"gaussian_blur": {"p": P, "sigma": (0.5, 0.8)}}},
        high_frequency_ratio,
        textured_images,
    ),
    "noise": (
        {"degradations": {"noise": {"p": P, "sigma": (0.01, 0.04)}}},
        {"degradations": {"noise": {"p": P, "sigma": (0.02, 0.05)}}},
        residual_std,
        structured_images,
    ),
    "jpeg": (
        {"degradations": {"jpeg": {"p": P, "quality": (20, 70)}}},
        {"degradations": {"jpeg": {"p": P, "quality": (60, 95)}}},
        mean_abs_difference,
        structured_images,
    ),
}
#: Relative gap allowed between the paths' effect statistics. Measured over 5
#: seeds on 1024 images: at most 0.06 (zoom), ~0.02 for the others; every wrong
#: range below moves its statistic by more than 0.2.
EFFECT_TOLERANCE = 0.1
#: kornia's differentiable JPEG rounds the DCT coefficients softly
#: (``round(x) + (x - round(x)) ** 3``), so it moves the pixels 7-11 % less than
#: libjpeg at the same quality (5 seeds); the wrong range moves them by 36 %.
JPEG_TOLERANCE = 0.15


def _measure(
    values: dict[str, Any], statistic: Any, images: list[Image.Image], path: Any
) -> tuple[float, float]:
    """Share of samples one path changed and the mean effect on them."""
    aug = TransformsConfig(**{**NO_AUGMENTATION_VALUES, **values})
    config = DataModuleConfig(data_root=Path("/x"), image_size=SIZE, transforms=aug)
    clean = _unit(clean_batch(config, images))
    torch.manual_seed(0)
    out = _unit(path(config, images))
    # About half a uint8 level: an untouched image is the clean one exactly.
    changed = (out - clean).abs().mean(dim=(1, 2, 3)) > 1e-3
    effect = statistic(out[changed], clean[changed])
    return float(changed.float().mean()), float(effect.mean())


def _tolerance(name: str) -> float:
    return JPEG_TOLERANCE if name == "jpeg" else EFFECT_TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
def test_each_new_device_op_matches_the_workers_path(name: str) -> None:
    values, _, statistic, make_images = CASES[name]
    images = make_images(COUNT)
    w_share, w_effect = _measure(values, statistic, images, workers_path)
    d_share, d_effect = _measure(values, statistic, images, device_path)
    p = 1.0 if name == "crop" else P
    # Binomial sd of the share: sqrt(0.25 / 1024) = 0.016; 3 sd.
    assert abs(w_share - p) < 0.05, (w_share, p)
    assert abs(d_share - p) < 0.05, (d_share, p)
    gap = abs(d_effect - w_effect) / abs(w_effect)
    assert gap < _tolerance(name), (name, w_effect, d_effect, gap)


@pytest.mark.parametrize("name", list(CASES))
def test_the_effect_statistic_sees_a_wrong_range(name: str) -> None:
    # The comparison above can fail: a device op with another range is caught.
    values, wrong, statistic, make_images = CASES[name]
    images = make_images(COUNT)
    _, w_effect = _measure(values, statistic, images, workers_path)
    _, d_effect = _measure(wrong, statistic, images, device_path)
    gap = abs(d_effect - w_effect) / abs(w_effect)
    assert gap > 2 * _tolerance(name), (name, w_effect, d_effect, gap)


def _broadcast() -> dict[str, Any]:
    """The ``broadcast`` preset's values, as Hydra composes them."""
    from hydra import compose, initialize_config_module

    from classifier_training.train import resolve_data_values

    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(
            config_name="train_demo",
            overrides=["data.data_root=/x", "transforms=broadcast"],
        )
    values: dict[str, Any] = resolve_data_values(cfg)["transforms"]
    return values


def test_broadcast_preset_runs_on_the_device_path(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    broadcast = _broadcast()
    dm = _datamodule(root, augment_on="device", transforms=broadcast)
    assert dm.augment_on == "device"
    assert dm.config.transforms.degradations.jpeg.p > 0
    torch.manual_seed(0)
    batch = dm.preview_batch(list(range(6)))["images"]
    assert batch.dtype == torch.float32
    assert batch.shape == (6, 3, 24, 24)
    # Normalised: the [0, 1] range mapped through the ImageNet statistics.
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = batch.transpose(0, 1).flatten(1)
    assert (per_channel.min(dim=1).values >= low - 1e-5).all()
    assert (per_channel.max(dim=1).values <= high + 1e-5).all()
    # `auto` keeps it on the workers on a CPU, on the device on a GPU.
    assert _datamodule(root, transforms=broadcast).augment_on == "workers"
    gpu = _datamodule(root, accelerator="gpu", transforms=broadcast)
    assert gpu.augment_on == "device"


@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_evaluation_batches_are_never_augmented(
    augment_on: str, tmp_path: Path
) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("", "7", "23"), per_class=6, size=24)
    plain = _datamodule(root, augment_on=augment_on, transforms=NO_AUGMENTATION_VALUES)
    broadcast = _datamodule(root, augment_on=augment_on, transforms=_broadcast())
    for split in ("val", "test"):
        torch.manual_seed(0)
        expected = next(iter(getattr(plain, f"{split}_dataloader")()))["images"]
        got = next(iter(getattr(broadcast, f"{split}_dataloader")()))
        assert got["images"].dtype == torch.float32
        torch.testing.assert_close(got["images"], expected)
        # The device hook passes evaluation batches through untouched.
        assert broadcast.on_after_batch_transfer(got, 0)["images"] is got["images"]


def test_the_random_resized_crop_needs_the_configured_size() -> None:
    crop = TransformsConfig(crop_scale=(0.5, 1.0))
    with pytest.raises(ValueError, match="output size"):
        DeviceAugmentation(crop, IMAGENET_MEAN, IMAGENET_STD)
    module = DeviceAugmentation(crop, IMAGENET_MEAN, IMAGENET_STD, size=SIZE)
    images = torch.randint(0, 256, (4, 3, SIZE, SIZE), dtype=torch.uint8)
    assert module(images).shape == (4, 3, SIZE, SIZE)
