"""Train-time augmentation of whole batches on the training device.

``data.augment_on`` chooses the path (:func:`resolve_augment_on`).

The ``workers`` path (:mod:`classifier_training.data.transforms`) augments one
PIL image at a time in the DataLoader workers. The ``device`` path moves that work
to the training device: the loader only serves the resized ``uint8`` images (the
cache's pixels), collated as ``uint8`` (a quarter of float32's bytes to move),
and :class:`DeviceAugmentation` applies the same preset with the same parameter
ranges to the whole batch, with per-sample random parameters, then normalises.
Evaluation batches are never augmented.

Both paths build their operations from the augmentation registry
(:mod:`classifier_training.data.augmentations`), in its order; the operations it
marks workers-only (the ``auto_augment`` policies) make the device path refuse
the preset. The batched operations kornia lacks live in
:mod:`classifier_training.data.device_ops` and are re-exported here.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from loguru import logger
from torch import nn

from classifier_training.config import TransformsConfig
from classifier_training.core.errors import root_cause_line
from classifier_training.core.preprocessing import mean_fill
from classifier_training.data.augmentations import (
    BuildContext,
    device_operations,
    workers_only_keys,
)
from classifier_training.data.device_ops import (
    BatchDownUpScale,
    BatchGaussianNoise,
    BatchMotionBlur,
    FilledRandomAffine,
)

__all__ = [
    "CPU_BATCHED_MAX_SIZE",
    "BatchDownUpScale",
    "BatchGaussianNoise",
    "BatchMotionBlur",
    "DeviceAugmentation",
    "FilledRandomAffine",
    "resolve_augment_on",
]


#: Largest image side for which ``auto`` augments batches on a CPU: up to it the
#: batched path makes the whole training loop faster than per-image PIL in the
#: workers; above it the workers' PIL, which runs beside the model, wins. The
#: measurements behind the threshold: ``benchmarks/README.md``.
CPU_BATCHED_MAX_SIZE = 96


def resolve_augment_on(
    augment_on: str, accelerator: str, image_size: int, aug: TransformsConfig
) -> str:
    """``workers`` or ``device`` for a ``data.augment_on`` setting.

    The rule for ``auto``: the path that trains fastest, never one that lacks a
    step of the preset. On a GPU the batched path costs the GPU little and frees
    the loader's CPU cores. On a CPU it runs in the training process, between
    the model's steps, while the workers run beside the model: it is chosen
    only where it saves much (small images, no degradations; kornia's JPEG, the
    costliest degradation, is slower than PIL's). The per-operation costs and
    the whole-loop comparisons: ``benchmarks/README.md``.

    Args:
        augment_on: ``auto``, ``workers`` or ``device``.
        accelerator: The Trainer's accelerator as configured (``auto``, ``cpu``,
            ``gpu``, ``cuda``, ``mps``, ...).
        image_size: The training image side (``data.image_size``).
        aug: The augmentation preset (``data.transforms``).

    Returns:
        For ``auto``: ``workers`` when the preset has a step only that path has
        (``auto_augment``); otherwise ``device`` when training runs on a GPU
        (CUDA or MPS); on a CPU ``device`` only for images up to
        :data:`CPU_BATCHED_MAX_SIZE` pixels without degradations, and
        ``workers`` otherwise. An explicit ``workers``/``device`` is returned
        as is (:class:`DeviceAugmentation` refuses a preset it cannot run).
    """
    if augment_on != "auto":
        return augment_on
    workers_only = workers_only_keys(aug)
    if workers_only:
        logger.info(f"data.augment_on=auto: workers, for {', '.join(workers_only)}")
        return "workers"
    name = accelerator.strip().lower()
    gpu_available = torch.cuda.is_available() or torch.backends.mps.is_available()
    on_gpu = name in {"gpu", "cuda", "mps"} or (name == "auto" and gpu_available)
    if on_gpu:
        return "device"
    small = image_size <= CPU_BATCHED_MAX_SIZE
    return "device" if small and not aug.degradations.enabled else "workers"


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
        ConfigError: If ``aug`` switches on an operation only the workers path
            has (``auto_augment``).
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
        self.aug = aug
        # The workers path fills with the mean colour rounded to uint8.
        self.context = BuildContext(mean_fill(mean), size, compile)
        self.augment = nn.Sequential(*device_operations(aug, self.context))
        self.augment_normalised = nn.Sequential(
            *device_operations(aug, self.context, normalised=True)
        )
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

        self._compile_pending = compile and aug.has_colour_jitter

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
        # On a CPU these many small operations run fastest on one thread, and
        # leave the rest to the model (benchmarks/README.md).
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
            eager = replace(self.context, compile=False)
            self.augment = nn.Sequential(*device_operations(self.aug, eager))
            self.augment.to(images.device)
            out = self._augment_batch(images)
        self._compile_pending = False
        return out

    def _augment_batch(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        x = self.augment(x).clamp_(0.0, 1.0)
        out: torch.Tensor = self.augment_normalised(self._standardize(x))
        return out
