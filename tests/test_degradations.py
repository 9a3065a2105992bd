"""Tests for the broadcast degradations (``data/degradations.py``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torchvision import tv_tensors
from torchvision.transforms import v2

from classifier_training.data.augmentations import build_degradations
from classifier_training.data.degradations import (
    DegradationsConfig,
    RandomDownUpScale,
    RandomGaussianNoise,
    RandomMotionBlur,
    ViaUint8,
    motion_blur_kernel,
)

H, W = 40, 32


def _pattern() -> npt.NDArray[np.uint8]:
    """A detailed RGB uint8 image: fine checkerboard, gradient and noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:H, 0:W]
    checker = ((x // 2 + y // 2) % 2) * 120.0
    base = checker[:, :, None] + np.stack([x * 3, y * 2, x + y], axis=-1)
    base += rng.normal(0, 10, base.shape)
    out: npt.NDArray[np.uint8] = np.clip(base + 40, 0, 255).astype(np.uint8)
    return out


def _as(kind: str, arr: npt.NDArray[np.uint8]) -> Any:
    chw = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    if kind == "pil":
        return Image.fromarray(arr, "RGB")
    if kind == "uint8":
        return chw
    if kind == "float":
        return chw.float() / 255.0
    if kind == "tv_image":
        return tv_tensors.Image(chw.float() / 255.0)
    raise AssertionError(kind)


def _to_float_array(image: Any) -> npt.NDArray[np.float64]:
    """HWC float64 on the 0-255 scale, whatever the input type."""
    if isinstance(image, Image.Image):
        return np.asarray(image, dtype=np.float64)
    tensor = image.as_subclass(torch.Tensor).detach()
    arr = tensor.permute(1, 2, 0).numpy().astype(np.float64)
    scaled: npt.NDArray[np.float64] = arr if tensor.dtype == torch.uint8 else arr * 255
    return scaled


def _highfreq_energy(image: Any) -> float:
    """Mean squared 4-neighbour Laplacian (high-frequency content)."""
    a = _to_float_array(image).mean(axis=-1)
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float((lap**2).mean())


KINDS = ("pil", "uint8", "float", "tv_image")

TRANSFORMS: dict[str, Callable[[], v2.Transform]] = {
    "downscale": lambda: RandomDownUpScale(scale=(0.3, 0.5)),
    "motion_blur": lambda: RandomMotionBlur(length=(5, 9)),
    "noise": lambda: RandomGaussianNoise(sigma=(0.03, 0.06)),
    "jpeg": lambda: ViaUint8(v2.JPEG((5, 20))),
    "all": lambda: build_degradations(
        DegradationsConfig.model_validate(
            {name: {"p": 1.0} for name in DegradationsConfig.model_fields}
        )
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_keeps_type_size_dtype_and_range_and_changes_image(
    name: str, kind: str
) -> None:
    image = _as(kind, _pattern())
    torch.manual_seed(0)
    out = TRANSFORMS[name]()(image)
    assert type(out) is type(image)
    if isinstance(image, Image.Image):
        assert out.size == image.size
        assert out.mode == image.mode
    else:
        assert out.shape == image.shape
        assert out.dtype == image.dtype
        if image.is_floating_point():
            assert float(out.min()) >= 0.0
            assert float(out.max()) <= 1.0
    diff = np.abs(_to_float_array(out) - _to_float_array(image)).mean()
    assert diff > 2.0, f"{name} on {kind} barely changed the image ({diff:.2f})"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_reproducible_under_manual_seed(name: str, kind: str) -> None:
    image = _as(kind, _pattern())
    transform = TRANSFORMS[name]()
    outputs = []
    for seed in (3, 3, 4, 5, 6):
        torch.manual_seed(seed)
        outputs.append(_to_float_array(transform(image)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # Other seeds draw other parameters (a few may coincide for JPEG quality).
    assert any(not np.array_equal(outputs[0], other) for other in outputs[2:])


def test_batched_tensors_are_supported() -> None:
    batch = torch.rand(2, 3, H, W)
    for name in ("downscale", "motion_blur", "noise", "jpeg"):
        out = TRANSFORMS[name]()(batch)
        assert out.shape == batch.shape, name
        assert out.dtype == batch.dtype, name


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_down_up_scale_removes_high_frequencies(
    mode: Literal["bilinear", "nearest"],
) -> None:
    image = _as("uint8", _pattern())
    out = RandomDownUpScale(scale=(0.4, 0.4), interpolations=(mode,))(image)
    assert _highfreq_energy(out) < 0.3 * _highfreq_energy(image)


def test_nearest_up_scaling_pixelates() -> None:
    image = _as("uint8", _pattern())
    out = RandomDownUpScale(scale=(0.25, 0.25), interpolations=("nearest",))(image)
    # Blocks of 4 x 4 identical pixels: each row equals its neighbour often.
    rows = out.float()
    same = (rows[:, 1:, :] == rows[:, :-1, :]).all(dim=0).float().mean()
    assert float(same) > 0.6


def test_motion_blur_spreads_a_point_along_the_drawn_line() -> None:
    length, angle = 9, 30.0
    image = torch.zeros(1, 31, 31)
    image[0, 15, 15] = 1.0
    out = RandomMotionBlur(length=(length, length), angle=(angle, angle))(image)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)  # energy kept
    ys, xs = torch.nonzero(out[0] > 1e-4, as_tuple=True)
    dx, dy = (xs - 15).double(), (ys - 15).double()
    theta = math.radians(angle)
    along = dx * math.cos(theta) - dy * math.sin(theta)  # screen y points down
    across = dx * math.sin(theta) + dy * math.cos(theta)
    assert float(across.abs().max()) < 1.0  # on the line
    assert float(along.max()) == pytest.approx((length - 1) / 2, abs=1.0)
    assert float(along.min()) == pytest.approx(-(length - 1) / 2, abs=1.0)
    assert len(xs) >= length
    # A horizontal line stays in its row.
    flat = RandomMotionBlur(length=(5, 5), angle=(0.0, 0.0))(image)
    assert set(torch.nonzero(flat[0] > 1e-4)[:, 0].tolist()) == {15}


def test_motion_blur_kernel_properties() -> None:
    kernel = motion_blur_kernel(6, 45.0)
    assert kernel.shape == (7, 7)  # even length rounded up to an odd side
    assert float(kernel.sum()) == pytest.approx(1.0)
    assert torch.allclose(kernel, kernel.flip(0).flip(1))  # point-symmetric
    assert torch.equal(motion_blur_kernel(1, 10.0), torch.ones(1, 1))
    with pytest.raises(ValueError, match="length"):
        motion_blur_kernel(0, 0.0)


def test_jpeg_quality_5_is_measurably_lossy() -> None:
    for kind in ("pil", "uint8", "float"):
        image = _as(kind, _pattern())
        low = ViaUint8(v2.JPEG(5))(image)
        high = ViaUint8(v2.JPEG(95))(image)
        err_low = np.abs(_to_float_array(low) - _to_float_array(image)).mean()
        err_high = np.abs(_to_float_array(high) - _to_float_array(image)).mean()
        assert err_low > 10.0, kind
        assert err_low > 3 * err_high, kind


def test_noise_has_the_drawn_strength() -> None:
    grey = torch.full((3, 64, 64), 0.5)
    out = RandomGaussianNoise(sigma=(0.05, 0.05))(grey)
    assert float((out - grey).std()) == pytest.approx(0.05, rel=0.1)
    as_uint8 = RandomGaussianNoise(sigma=(0.05, 0.05))(
        torch.full((3, 64, 64), 128, dtype=torch.uint8)
    )
    assert float(as_uint8.float().std()) == pytest.approx(0.05 * 255, rel=0.1)


def test_all_off_by_default_is_identity() -> None:
    transform = build_degradations(DegradationsConfig())
    assert isinstance(transform, v2.Identity)
    image = _as("pil", _pattern())
    assert transform(image) is image


def test_probability_zero_and_one() -> None:
    image = _as("uint8", _pattern())
    off = DegradationsConfig.model_validate(
        {"jpeg": {"p": 0.0, "quality": [5, 5]}, "noise": {"p": 0.0}}
    )
    assert torch.equal(build_degradations(off)(image), image)
    on = build_degradations(DegradationsConfig.model_validate({"jpeg": {"p": 1.0}}))
    torch.manual_seed(0)
    assert all(not torch.equal(on(image), image) for _ in range(10))
    half = build_degradations(
        DegradationsConfig.model_validate({"jpeg": {"p": 0.5, "quality": [5, 5]}})
    )
    changed = sum(not torch.equal(half(image), image) for _ in range(200))
    assert 60 < changed < 140


def test_zoom_keeps_size_and_fills_border() -> None:
    image = torch.full((3, H, W), 200, dtype=torch.uint8)
    spec = DegradationsConfig.model_validate({"zoom": {"p": 1.0, "scale": [0.5, 0.5]}})
    out = build_degradations(spec, fill=(10, 20, 30))(image)
    assert out.shape == image.shape
    assert out[:, 0, 0].tolist() == [10, 20, 30]  # zoomed out: border uncovered
    assert out[:, H // 2, W // 2].tolist() == [200, 200, 200]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"jpeg": {"p": 1.5}}, "jpeg.p"),
        ({"jpeg": {"quality": [0, 50]}}, "jpeg"),
        ({"noise": {"sigma": [0.2, 0.1]}}, "low <= high"),
        ({"downscale": {"scale": [0.5, 1.5]}}, r"\(0, 1\]"),
        ({"downscale": {"interpolations": ["bicubic"]}}, "interpolations"),
        ({"gaussian_blur": {"kernel_size": 4}}, "odd"),
        ({"motion_blur": {"length": [0, 3]}}, "length"),
        ({"pixelate": {"p": 1.0}}, "pixelate"),
    ],
)
def test_config_rejects_bad_values(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        DegradationsConfig.model_validate(data)


def test_transform_constructors_reject_bad_ranges() -> None:
    with pytest.raises(ValueError, match="scale"):
        RandomDownUpScale(scale=(0.0, 0.5))
    with pytest.raises(ValueError, match="interpolations"):
        RandomDownUpScale(interpolations=())
    with pytest.raises(ValueError, match="length"):
        RandomMotionBlur(length=(5, 3))
    with pytest.raises(ValueError, match="sigma"):
        RandomGaussianNoise(sigma=(-0.1, 0.1))


@pytest.mark.parametrize(
    ("make", "data"),
    [
        (
            lambda: RandomDownUpScale(scale=(0.5, 1.5)),
            {"downscale": {"scale": (0.5, 1.5)}},
        ),
        (
            lambda: RandomDownUpScale(interpolations=("bicubic",)),
            {"downscale": {"interpolations": ("bicubic",)}},
        ),
        (lambda: RandomMotionBlur(length=(0, 3)), {"motion_blur": {"length": (0, 3)}}),
        (
            lambda: RandomMotionBlur(angle=(90.0, 0.0)),
            {"motion_blur": {"angle": (90.0, 0.0)}},
        ),
        (
            lambda: RandomGaussianNoise(sigma=(0.2, 0.1)),
            {"noise": {"sigma": (0.2, 0.1)}},
        ),
    ],
)
def test_transforms_reject_what_the_config_rejects_with_its_message(
    make: Callable[[], v2.Transform], data: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as config_error:
        DegradationsConfig.model_validate(data)
    with pytest.raises(ValidationError) as transform_error:
        make()
    assert [e["msg"] for e in transform_error.value.errors()] == [
        e["msg"] for e in config_error.value.errors()
    ]


def test_transform_defaults_are_the_config_defaults() -> None:
    spec = DegradationsConfig()
    assert RandomDownUpScale().scale == spec.downscale.scale
    assert RandomDownUpScale().interpolations == spec.downscale.interpolations
    assert RandomMotionBlur().length == spec.motion_blur.length
    assert RandomMotionBlur().angle == spec.motion_blur.angle
    assert RandomGaussianNoise().sigma == spec.noise.sigma
