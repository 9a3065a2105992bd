"""Batched operations of the device path that kornia lacks or does differently.

Each takes a whole float ``N x C x H x W`` batch on the ``[0, 1]`` scale and draws
its random parameters per sample from torch's CPU generator (the same draws on
every device for a seed). They are the device-path twins of the workers path's
per-image operations (:mod:`classifier_training.data.degradations`); the
augmentation registry (:mod:`classifier_training.data.augmentations`) pairs them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from classifier_training.config import DownUpScaleSpec, MotionBlurSpec, NoiseSpec
from classifier_training.data.degradations import motion_blur_kernel

__all__ = [
    "BatchDownUpScale",
    "BatchGaussianNoise",
    "BatchMotionBlur",
    "FilledRandomAffine",
]


def _chosen(count: int, p: float) -> torch.Tensor:
    """Indices of the samples an operation with probability ``p`` applies to.

    Drawn on the CPU from torch's generator (no device sync, and the same draw
    on every device for a seed).
    """
    if p >= 1.0:
        return torch.arange(count)
    return torch.nonzero(torch.rand(count) < p).flatten()


def _uniform(count: int, low: float, high: float) -> torch.Tensor:
    """``count`` CPU float32 values drawn uniformly from ``[low, high]``."""
    return torch.empty(count).uniform_(low, high)


class _PerSample(nn.Module):
    """Applies :meth:`transform` to each sample with probability ``p``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Transform the chosen samples of a float ``N x C x H x W`` batch."""
        chosen = _chosen(len(images), self.p)
        if len(chosen) == 0:
            return images
        if len(chosen) == len(images):
            return self.transform(images)
        chosen = chosen.to(images.device)
        out = images.clone()
        out[chosen] = self.transform(images[chosen])
        return out

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Transform every sample of ``images`` (parameters drawn per sample)."""
        raise NotImplementedError


class BatchDownUpScale(_PerSample):
    """Batched :class:`~classifier_training.data.degradations.RandomDownUpScale`.

    Per sample: a size factor from ``spec.scale`` and an up-scaling interpolation
    from ``spec.interpolations``; down-scaling is antialiased bilinear, as on the
    workers path, ``nearest`` is ``nearest-exact`` (PIL's pixel-centre rule).

    Args:
        spec: The ``degradations.downscale`` settings.
    """

    def __init__(self, spec: DownUpScaleSpec) -> None:
        super().__init__(spec.p)
        self.scale = spec.scale
        self.modes = [
            "nearest-exact" if mode == "nearest" else "bilinear"
            for mode in spec.interpolations
        ]

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Down-scale each sample by its factor and back to its size."""
        height, width = images.shape[-2:]
        factors = _uniform(len(images), *self.scale).tolist()
        modes = torch.randint(len(self.modes), (len(images),)).tolist()
        out = torch.empty_like(images)
        # One image at a time: each has its own intermediate size.
        for i, (factor, mode) in enumerate(zip(factors, modes, strict=True)):
            small = (max(1, round(height * factor)), max(1, round(width * factor)))
            down = nnf.interpolate(
                images[i : i + 1], small, mode="bilinear", antialias=True
            )
            up_mode = self.modes[mode]
            extra: dict[str, Any] = (
                {"align_corners": False} if up_mode == "bilinear" else {}
            )
            out[i : i + 1] = nnf.interpolate(
                down, (height, width), mode=up_mode, **extra
            )
        return out


class BatchMotionBlur(_PerSample):
    """Batched :class:`~classifier_training.data.degradations.RandomMotionBlur`.

    Per sample a line kernel (:func:`motion_blur_kernel`, the workers path's) of
    random length and angle, replicate padding. kornia's ``RandomMotionBlur``
    shares one kernel size across the batch and draws lines differently, so this
    one is written here: all kernels, zero-padded to the largest, in one grouped
    convolution.

    Args:
        spec: The ``degradations.motion_blur`` settings.
    """

    def __init__(self, spec: MotionBlurSpec) -> None:
        super().__init__(spec.p)
        self.length = spec.length
        self.angle = spec.angle

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Convolve each sample with its own line kernel."""
        count, channels, height, width = images.shape
        lengths = torch.randint(self.length[0], self.length[1] + 1, (count,))
        angles = _uniform(count, *self.angle)
        kernels = [
            motion_blur_kernel(int(n), float(a))
            for n, a in zip(lengths, angles, strict=True)
        ]
        size = max(k.shape[-1] for k in kernels)
        weight = torch.zeros(count, size, size)
        for i, k in enumerate(kernels):
            offset = (size - k.shape[-1]) // 2
            weight[i, offset : offset + k.shape[-1], offset : offset + k.shape[-1]] = k
        weight = weight.to(images.device).repeat_interleave(channels, dim=0)
        pad = size // 2
        work = nnf.pad(
            images.reshape(1, count * channels, height, width),
            (pad, pad, pad, pad),
            mode="replicate",
        )
        out = nnf.conv2d(work, weight.unsqueeze(1), groups=count * channels)
        return out.reshape(count, channels, height, width)


class BatchGaussianNoise(_PerSample):
    """Batched :class:`~classifier_training.data.degradations.RandomGaussianNoise`.

    Per sample a sigma from ``spec.sigma`` (``[0, 1]`` scale); the result is
    clipped to ``[0, 1]``, as on the workers path.

    Args:
        spec: The ``degradations.noise`` settings.
    """

    def __init__(self, spec: NoiseSpec) -> None:
        super().__init__(spec.p)
        self.sigma = spec.sigma

    def transform(self, images: torch.Tensor) -> torch.Tensor:
        """Add noise with each sample's sigma, clipped to ``[0, 1]``."""
        sigma = _uniform(len(images), *self.sigma).to(images.device)
        noise = torch.randn_like(images) * sigma.view(-1, 1, 1, 1)
        return (images + noise).clamp_(0.0, 1.0)


class FilledRandomAffine(nn.Module):
    """kornia's bilinear ``RandomAffine``; uncovered pixels take a constant colour.

    kornia's ``padding_mode="fill"`` warps a mask of ones as well as the image to
    blend the fill colour in. Bilinear warping is linear, so warping
    ``images - fill`` with zero padding and adding ``fill`` back gives the same
    result up to float rounding with one warp instead of two (the saving:
    ``benchmarks/README.md``).

    Args:
        fill: RGB fill colour, ``[0, 1]`` scale.
        **affine: ``kornia.augmentation.RandomAffine`` arguments (``degrees``,
            ``translate``, ``scale``, ``shear``, ``p``).
    """

    def __init__(self, fill: torch.Tensor, **affine: Any) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.affine = K.RandomAffine(
            resample="bilinear", padding_mode="zeros", **affine
        )
        self.register_buffer("fill", fill.view(1, -1, 1, 1).clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Warp a float ``N x C x H x W`` batch, per-sample parameters."""
        fill = self.fill
        assert isinstance(fill, torch.Tensor)
        out: torch.Tensor = self.affine(images - fill) + fill
        return out
