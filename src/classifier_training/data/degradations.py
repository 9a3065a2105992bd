"""Broadcast-video degradations as ``torchvision.transforms.v2`` transforms.

Jersey crops cut from broadcast video are small, blurred, noisy and JPEG
compressed. A :class:`DegradationsConfig` describes them as data (each with a
probability ``p`` and a range, all off by default); the augmentation registry
(:mod:`classifier_training.data.augmentations`) turns it into transforms.

v2 already provides most of them and is used as is: ``v2.JPEG`` (quality range),
``v2.GaussianBlur`` (sigma range) and ``v2.RandomAffine`` (zoom in/out with a
single ``scale`` range, keeping the image size). Written here, because v2 lacks
them:

* :class:`RandomDownUpScale`: down-scale by a random factor and back up;
  "pixelate" when the drawn up-scaling interpolation is ``nearest``.
* :class:`RandomMotionBlur`: a line kernel of random length and angle.
* :class:`RandomGaussianNoise`: ``v2.GaussianNoise`` has one fixed sigma and
  refuses PIL images; this one draws sigma per call and accepts PIL.
* :class:`ViaUint8`: runs a uint8-only transform (``v2.JPEG``) on float tensors.

Every transform accepts PIL images, uint8 tensors and float tensors in ``[0, 1]``
(plain or ``tv_tensors.Image``, with any leading batch dimensions), keeps the
size, dtype and value range, and draws its random parameters from torch's
generator, so ``torch.manual_seed`` reproduces it. Apply them before
normalisation. The settings (:class:`DegradationsConfig` and its specs) live in
:mod:`classifier_training.config`, below ``data/`` in the layers, and are
re-exported here; a constructor checks its arguments by building the spec, so
each rule is stated once, in the spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import PIL.Image
import torch
from torch.nn import functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import is_pure_tensor

from classifier_training.config import (
    DegradationsConfig,
    DownUpScaleSpec,
    GaussianBlurSpec,
    Interpolation,
    JpegSpec,
    MotionBlurSpec,
    NoiseSpec,
    ZoomSpec,
)

__all__ = [
    "DegradationsConfig",
    "DownUpScaleSpec",
    "GaussianBlurSpec",
    "JpegSpec",
    "MotionBlurSpec",
    "NoiseSpec",
    "RandomDownUpScale",
    "RandomGaussianNoise",
    "RandomMotionBlur",
    "ViaUint8",
    "ZoomSpec",
    "motion_blur_kernel",
]

_MODES: dict[str, F.InterpolationMode] = {
    "bilinear": F.InterpolationMode.BILINEAR,
    "nearest": F.InterpolationMode.NEAREST,
}
# Photometric: images only; boxes, masks and labels pass through untouched.
_IMAGE_TYPES: tuple[type | Callable[[Any], bool], ...] = (
    PIL.Image.Image,
    tv_tensors.Image,
    is_pure_tensor,
)
# The specs' defaults are the constructors' defaults.
_DOWNSCALE = DownUpScaleSpec()
_MOTION_BLUR = MotionBlurSpec()
_NOISE = NoiseSpec()


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high).item())


def _randint(low: int, high: int) -> int:
    """Integer in ``[low, high]``, both ends included."""
    return int(torch.randint(low, high + 1, ()).item())


def _apply_uint8_or_float(
    inpt: Any, kernel: Callable[[torch.Tensor], torch.Tensor]
) -> Any:
    """Run a tensor ``kernel`` on a PIL image or tensor, returning the input type.

    PIL images go through a uint8 tensor; tv_tensors are re-wrapped.
    """
    if isinstance(inpt, PIL.Image.Image):
        return F.to_pil_image(kernel(F.pil_to_tensor(inpt)), mode=inpt.mode)
    out = kernel(inpt.as_subclass(torch.Tensor))
    return (
        tv_tensors.wrap(out, like=inpt)
        if isinstance(inpt, tv_tensors.TVTensor)
        else out
    )


class _ImageTransform(v2.Transform):  # type: ignore[misc]
    """v2 transform of images only; boxes, masks and labels pass through."""

    _transformed_types = _IMAGE_TYPES

    # torchvision < 0.21 calls the private names of make_params/transform.
    def _get_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        params: dict[str, Any] = self.make_params(flat_inputs)
        return params

    def _transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self.transform(inpt, params)


class RandomDownUpScale(_ImageTransform):
    """Down-scale by a random factor, then back up to the original size.

    Simulates a player far from the camera: the crop had few pixels and was
    up-scaled by the loader. Down-scaling is antialiased bilinear (an average, as
    a camera sensor does); up-scaling uses an interpolation drawn per call, where
    ``nearest`` gives the blocky "pixelate" look and ``bilinear`` a soft one.

    Args:
        scale: ``(low, high)`` range of the size factor, in ``(0, 1]``.
        interpolations: Up-scaling interpolations drawn uniformly.

    Raises:
        pydantic.ValidationError: A ``ValueError``, if :class:`DownUpScaleSpec`
            rejects the arguments.
    """

    def __init__(
        self,
        scale: tuple[float, float] = _DOWNSCALE.scale,
        interpolations: tuple[Interpolation, ...] = _DOWNSCALE.interpolations,
    ) -> None:
        """Check the ranges against the spec's rules and store them."""
        super().__init__()
        spec = DownUpScaleSpec(scale=scale, interpolations=interpolations)
        self.scale = spec.scale
        self.interpolations = spec.interpolations

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the size factor and the up-scaling interpolation."""
        factor = _uniform(*self.scale)
        mode = self.interpolations[_randint(0, len(self.interpolations) - 1)]
        return {"factor": factor, "interpolation": _MODES[mode]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Down-scale ``inpt`` and scale it back to its size."""
        height, width = F.get_size(inpt)
        small = [
            max(1, round(height * params["factor"])),
            max(1, round(width * params["factor"])),
        ]
        down = F.resize(inpt, small, F.InterpolationMode.BILINEAR, antialias=True)
        return F.resize(down, [height, width], params["interpolation"], antialias=True)


def motion_blur_kernel(length: int, angle_deg: float) -> torch.Tensor:
    """Normalised, antialiased line kernel for motion blur.

    Args:
        length: Line length in pixels (>= 1; 1 is the identity).
        angle_deg: Direction, counter-clockwise from the +x axis as seen on
            screen (y grows downwards in the image).

    Returns:
        A float32 ``(k, k)`` kernel summing to 1, ``k`` = ``length`` rounded up
        to odd; point-symmetric, so convolution and correlation agree.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    size = length if length % 2 == 1 else length + 1
    half_size = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half_size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    theta = math.radians(angle_deg)
    dx, dy = math.cos(theta), -math.sin(theta)
    # Distance to the segment of the given length centred on the kernel.
    t = (x * dx + y * dy).clamp(-(length - 1) / 2, (length - 1) / 2)
    dist = torch.hypot(x - t * dx, y - t * dy)
    kernel = (1.0 - dist).clamp(min=0.0)
    return (kernel / kernel.sum()).to(torch.float32)


def _convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel 2-D convolution of ``[..., C, H, W]``, keeping dtype and size."""
    shape = image.shape
    channels = shape[-3]
    batch = image.reshape(-1, channels, shape[-2], shape[-1])
    work = batch.to(torch.float32)
    pad = kernel.shape[-1] // 2
    # Replicate padding works for any image size (reflect needs pad < size).
    work = nnf.pad(work, (pad, pad, pad, pad), mode="replicate")
    weight = kernel.to(work.device).expand(channels, 1, *kernel.shape)
    out = nnf.conv2d(work, weight, groups=channels)
    if image.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255)
    return out.to(image.dtype).reshape(shape)


class RandomMotionBlur(_ImageTransform):
    """Blur along a line of random length and direction (camera or player motion).

    Args:
        length: ``(low, high)`` kernel length in pixels, integers, ``low >= 1``.
        angle: ``(low, high)`` direction in degrees, counter-clockwise from +x.

    Raises:
        pydantic.ValidationError: A ``ValueError``, if :class:`MotionBlurSpec`
            rejects the arguments.
    """

    def __init__(
        self,
        length: tuple[int, int] = _MOTION_BLUR.length,
        angle: tuple[float, float] = _MOTION_BLUR.angle,
    ) -> None:
        """Check the ranges against the spec's rules and store them."""
        super().__init__()
        spec = MotionBlurSpec(length=length, angle=angle)
        self.length = spec.length
        self.angle = spec.angle

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the line kernel."""
        length = _randint(*self.length)
        angle = _uniform(*self.angle)
        return {"kernel": motion_blur_kernel(length, angle)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Convolve ``inpt`` with the drawn kernel."""
        kernel = params["kernel"]
        return _apply_uint8_or_float(inpt, lambda img: _convolve(img, kernel))


def _noise(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Noise in float (uint8 support in v2's kernel is recent), same dtype back."""
    work = image if image.is_floating_point() else image.to(torch.float32) / 255.0
    out: torch.Tensor = F.gaussian_noise(work, sigma=sigma, clip=True)
    if image.is_floating_point():
        return out
    return (out * 255.0).round_().to(image.dtype)


class RandomGaussianNoise(_ImageTransform):
    """Additive Gaussian (sensor) noise with a sigma drawn per call.

    Uses ``v2.functional.gaussian_noise``; sigma is on the ``[0, 1]`` scale (times
    255 for uint8 and PIL) and the result is clipped to the valid range.

    Args:
        sigma: ``(low, high)`` range of the noise standard deviation.

    Raises:
        pydantic.ValidationError: A ``ValueError``, if :class:`NoiseSpec`
            rejects the argument.
    """

    def __init__(self, sigma: tuple[float, float] = _NOISE.sigma) -> None:
        """Check the range against the spec's rules and store it."""
        super().__init__()
        self.sigma = NoiseSpec(sigma=sigma).sigma

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw sigma."""
        return {"sigma": _uniform(*self.sigma)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Add noise to ``inpt``."""
        sigma = params["sigma"]
        return _apply_uint8_or_float(inpt, lambda img: _noise(img, sigma))


class ViaUint8(_ImageTransform):
    """Run a transform that needs uint8 (e.g. ``v2.JPEG``) on float tensors too.

    Float tensors in ``[0, 1]`` are converted to uint8, transformed and converted
    back to their dtype; PIL images and uint8 tensors go straight through.

    Args:
        inner: The uint8/PIL transform.
    """

    def __init__(self, inner: v2.Transform) -> None:
        """Wrap ``inner``."""
        super().__init__()
        self.inner = inner

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Apply ``inner``, through uint8 if ``inpt`` is a float tensor."""
        if isinstance(inpt, PIL.Image.Image) or not inpt.is_floating_point():
            return self.inner(inpt)
        as_uint8 = F.to_dtype(inpt, torch.uint8, scale=True)
        return F.to_dtype(self.inner(as_uint8), inpt.dtype, scale=True)
