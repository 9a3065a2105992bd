"""Train-time augmentation of whole batches on the training device.

``data.augment_on`` chooses the path.

The ``workers`` path (:mod:`classifier_training.data.transforms`) augments one
PIL image at a time in the DataLoader workers. The ``device`` path moves that work
to the training device: the loader only serves the resized ``uint8`` images (the
cache's pixels), collated as ``uint8`` (4x less host-to-device traffic than
float32), and :class:`DeviceAugmentation` applies the same preset with the same
parameter ranges to the whole batch, with per-sample random parameters
(``kornia.augmentation`` where it has the operation, :class:`BatchDownUpScale`,
:class:`BatchMotionBlur` and :class:`BatchGaussianNoise` where it does not), then
normalises. Evaluation batches are never augmented.

The order of the operations is the workers path's: flip, random-resized crop,
affine (uncovered pixels take the mean colour), colour jitter, grayscale, the
broadcast degradations (zoom, down-up scale, motion blur, Gaussian blur, noise,
JPEG; each with its probability per sample), normalise, random erasing. Only the
``auto_augment`` policies stay on the workers path (kornia's policies are not
torchvision's): :meth:`~classifier_training.config.TransformsConfig.workers_only_keys`.
"""

from __future__ import annotations

from typing import Any

import torch
from loguru import logger
from torch import nn
from torch.nn import functional as nnf

from classifier_training.config import (
    DownUpScaleSpec,
    MotionBlurSpec,
    NoiseSpec,
    TransformsConfig,
)
from classifier_training.core.errors import root_cause_line
from classifier_training.core.preprocessing import mean_fill
from classifier_training.data.degradations import motion_blur_kernel
from classifier_training.data.transforms import has_affine, has_colour_jitter

__all__ = [
    "CPU_BATCHED_MAX_SIZE",
    "BatchDownUpScale",
    "BatchGaussianNoise",
    "BatchMotionBlur",
    "DeviceAugmentation",
    "FilledRandomAffine",
    "resolve_augment_on",
]


#: Largest image side for which ``auto`` augments batches on a CPU. With the
#: colour jitter compiled, the batched ``digits`` preset runs 6.2x faster than
#: per-image PIL at 40 px, 2.2x at 96 px, 1.3x at 128 px and 0.57x at 224 px (one
#: thread), and the whole training loop beats PIL in the workers at both sizes:
#: 0.92x the plain loop at 40 px (median of 11 runs) against 0.82-0.87x, 0.98x
#: against 0.93x at 96 px (``benchmarks/README.md``).
CPU_BATCHED_MAX_SIZE = 96


def resolve_augment_on(
    augment_on: str, accelerator: str, image_size: int, aug: TransformsConfig
) -> str:
    """``workers`` or ``device`` for a ``data.augment_on`` setting.

    Why degradations stay on the workers on a CPU: measured on this project's
    2-core CPU (busy), one thread, 64 images, microseconds per image, per-image
    PIL (workers) / batched (device), each operation alone at ``p = 1``:

    ============== =========== =========== ===========
    operation      40 px       64 px       96 px
    ============== =========== =========== ===========
    crop           37 / 31     52 / 49     87 / 92
    zoom           46 / 37     83 / 136    168 / 212
    downscale      32 / 37     51 / 64     87 / 121
    motion blur    216 / 43    257 / 127   386 / 110
    gaussian blur  173 / 12    222 / 30    323 / 77
    noise          170 / 18    342 / 43    720 / 230
    jpeg           110 / 183   130 / 302   176 / 1653
    ============== =========== =========== ===========

    The whole ``broadcast`` preset: 448 / 379 at 40 px (0.84x) and 644 / 752 at
    64 px (1.17x), against 249 / 154 (0.62x) for ``digits`` at 40 px before its
    colour jitter was compiled (319 / 51, 0.16x, compiled; quiet machine). The
    batched path runs in the training process, between the model's steps,
    while the workers run beside the model: a 16 % saving is not worth that
    (``digits``' 6x is, ``benchmarks/README.md``). kornia's differentiable
    JPEG is the costly step, 1.7x PIL at 40 px, 9x at 96 px.

    Args:
        augment_on: ``auto``, ``workers`` or ``device``.
        accelerator: The Trainer's accelerator as configured (``auto``, ``cpu``,
            ``gpu``, ``cuda``, ``mps``, ...).
        image_size: The training image side (``data.image_size``).
        aug: The augmentation preset (``data.transforms``).

    Returns:
        For ``auto``: ``workers`` when the preset has a step only that path has
        (``auto_augment``); otherwise ``device`` when training runs on a GPU
        (CUDA or MPS), where the batched path costs the GPU almost nothing and
        frees the loader's CPU cores; on a CPU ``device`` only for images up to
        :data:`CPU_BATCHED_MAX_SIZE` pixels without degradations, and
        ``workers`` otherwise, where per-image PIL in the worker processes is as
        fast or faster and runs beside the model. An explicit
        ``workers``/``device`` is returned as is.
    """
    if augment_on != "auto":
        return augment_on
    if aug.workers_only_keys():
        return "workers"
    name = accelerator.strip().lower()
    gpu_available = torch.cuda.is_available() or torch.backends.mps.is_available()
    on_gpu = name in {"gpu", "cuda", "mps"} or (name == "auto" and gpu_available)
    if on_gpu:
        return "device"
    small = image_size <= CPU_BATCHED_MAX_SIZE
    return "device" if small and not aug.degradations.enabled else "workers"


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
    result (largest difference 2e-7) with one warp instead of two: half the
    time (1.3 vs 2.5 ms per batch of 64 at 40 px, one core).

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


def _degradations(aug: TransformsConfig, fill: torch.Tensor) -> list[nn.Module]:
    """The enabled degradations, in the workers path's order."""
    import kornia.augmentation as K

    spec = aug.degradations
    ops: list[nn.Module] = []
    if spec.zoom.p > 0:
        ops.append(
            FilledRandomAffine(fill, degrees=0.0, scale=spec.zoom.scale, p=spec.zoom.p)
        )
    if spec.downscale.p > 0:
        ops.append(BatchDownUpScale(spec.downscale))
    if spec.motion_blur.p > 0:
        ops.append(BatchMotionBlur(spec.motion_blur))
    if spec.gaussian_blur.p > 0:
        size = spec.gaussian_blur.kernel_size
        ops.append(
            K.RandomGaussianBlur(
                (size, size), spec.gaussian_blur.sigma, p=spec.gaussian_blur.p
            )
        )
    if spec.noise.p > 0:
        ops.append(BatchGaussianNoise(spec.noise))
    if spec.jpeg.p > 0:
        low, high = spec.jpeg.quality
        ops.append(K.RandomJPEG(jpeg_quality=(float(low), float(high)), p=spec.jpeg.p))
    return ops


class DeviceAugmentation(nn.Module):
    """``uint8`` batch to normalised float batch, augmented when training.

    Args:
        aug: The augmentation preset (``data.transforms``), as on the workers path.
        mean: Normalisation mean (RGB, 0-1 scale).
        std: Normalisation standard deviation (RGB, 0-1 scale).
        size: Image side (``data.image_size``); the random-resized crop's output.
        compile: Compile the colour jitter's four colour functions with
            ``torch.compile`` (kornia's ``ColorJitter.compile``): one fused kernel
            each instead of dozens of small operations, the costliest step of
            the ``digits`` preset (hue: RGB to HSV and back). Compilation
            happens on the first batch (seconds); if it fails, a warning says
            why and the jitter runs uncompiled (same augmentation, slower).

    Raises:
        ValueError: If the random-resized crop is on and ``size`` is missing.
    """

    def __init__(
        self,
        aug: TransformsConfig,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        size: int | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # Imported here: kornia takes a second to import, and only this path needs it.
        import kornia.augmentation as K

        # The workers path fills with the mean colour rounded to uint8.
        fill = torch.tensor(mean_fill(mean), dtype=torch.float32) / 255.0
        ops: list[nn.Module] = []
        if aug.horizontal_flip_p > 0:
            ops.append(K.RandomHorizontalFlip(p=aug.horizontal_flip_p))
        if aug.random_resized_crop:
            if size is None:
                raise ValueError("the random-resized crop needs the output size")
            ops.append(
                K.RandomResizedCrop(
                    (size, size), scale=aug.crop_scale, ratio=aug.crop_ratio, p=1.0
                )
            )
        if has_affine(aug):
            ops.append(
                FilledRandomAffine(
                    fill,
                    degrees=aug.rotation_degrees,
                    translate=(aug.translate, aug.translate) if aug.translate else None,
                    scale=aug.scale,
                    shear=aug.shear_degrees or None,
                    p=1.0,
                )
            )
        self.aug = aug
        self._jitter_index: int | None = None
        if has_colour_jitter(aug):
            self._jitter_index = len(ops)
            ops.append(self._colour_jitter(compiled=compile))
        if aug.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=aug.grayscale_p))
        ops += _degradations(aug, fill)
        self.augment = nn.Sequential(*ops)
        # After normalisation, value 0 is the mean colour, as on the workers path.
        self.erase = (
            K.RandomErasing(p=aug.random_erasing_p)
            if aug.random_erasing_p > 0
            else nn.Identity()
        )
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

        self._compile_pending = compile and self._jitter_index is not None

    def _colour_jitter(self, compiled: bool) -> nn.Module:
        """kornia's colour jitter with the preset's strengths, compiled or not."""
        import kornia.augmentation as K

        aug = self.aug
        jitter: nn.Module = K.ColorJitter(
            aug.brightness, aug.contrast, aug.saturation, aug.hue, p=1.0
        )
        if compiled:
            jitter.compile()  # in place: the module's colour functions
        return jitter

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` in float32 (what the eval transform does)."""
        return self._standardize(images.to(torch.float32) / 255.0)

    def _standardize(self, images: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` of a float batch on the ``[0, 1]`` scale."""
        mean, std = self.mean, self.std
        assert isinstance(mean, torch.Tensor)
        assert isinstance(std, torch.Tensor)
        return (images - mean) / std

    @torch.no_grad()
    def forward(self, images: torch.Tensor, augment: bool = True) -> torch.Tensor:
        """Augment (when ``augment``) and normalise a batch.

        Args:
            images: ``uint8`` batch ``N x 3 x H x W`` on any device.
            augment: Apply the random augmentation (train); ``False`` only
                normalises (val/test).

        Returns:
            Normalised float32 ``N x 3 x H x W`` on the same device.
        """
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                "DeviceAugmentation expects a uint8 N x 3 x H x W batch, got "
                f"{images.dtype} {tuple(images.shape)}"
            )
        if not augment or len(images) == 0:
            return self.normalize(images)
        if images.device.type != "cpu":
            return self._augment(images)
        # On a CPU these many small operations run fastest on one thread (up to
        # 20x faster than two on a busy machine), and leave the rest to the model.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._augment(images)
        finally:
            torch.set_num_threads(threads)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        if not self._compile_pending:
            return self._augment_batch(images)
        # The first call compiles; a failure costs speed, never the run.
        try:
            out = self._augment_batch(images)
        except Exception as error:
            logger.warning(
                "data.compile_augmentation: torch.compile failed on the first "
                f"batch ({root_cause_line(error)}); the colour jitter runs "
                "uncompiled (same augmentation, slower). Set "
                "data.compile_augmentation=false to skip the attempt"
            )
            assert self._jitter_index is not None
            self.augment[self._jitter_index] = self._colour_jitter(compiled=False)
            out = self._augment_batch(images)
        self._compile_pending = False
        return out

    def _augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        x = self.augment(x).clamp_(0.0, 1.0)
        out: torch.Tensor = self.erase(self._standardize(x))
        return out
