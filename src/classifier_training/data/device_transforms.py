"""Train-time augmentation of whole batches on the training device.

``data.augment_on`` chooses the path.

The ``workers`` path (:mod:`classifier_training.data.transforms`) augments one
PIL image at a time in the DataLoader workers. The ``device`` path moves that work
to the training device: the loader only serves the resized ``uint8`` images (the
cache's pixels), collated as ``uint8`` (4x less host-to-device traffic than
float32), and :class:`DeviceAugmentation` applies the same preset with the same
parameter ranges to the whole batch, with per-sample random parameters
(``kornia.augmentation``), then normalises. Evaluation batches are never augmented.

The order of the operations is the workers path's: flip, affine (uncovered pixels
take the mean colour), colour jitter, grayscale, normalise, random erasing.
"""

from __future__ import annotations

import torch
from torch import nn

from classifier_training.config import TransformsConfig
from classifier_training.core.preprocessing import mean_fill
from classifier_training.data.transforms import has_affine, has_colour_jitter

__all__ = ["CPU_BATCHED_MAX_SIZE", "DeviceAugmentation", "resolve_augment_on"]


#: Largest image side for which ``auto`` augments batches on a CPU: there the
#: batched path beats per-image PIL (2.9x at 40 px, equal at 96 px) and the whole
#: training loop runs 9-15 % faster (``benchmarks/README.md``).
CPU_BATCHED_MAX_SIZE = 64


def resolve_augment_on(augment_on: str, accelerator: str, image_size: int) -> str:
    """``workers`` or ``device`` for a ``data.augment_on`` setting.

    Args:
        augment_on: ``auto``, ``workers`` or ``device``.
        accelerator: The Trainer's accelerator as configured (``auto``, ``cpu``,
            ``gpu``, ``cuda``, ``mps``, ...).
        image_size: The training image side (``data.image_size``).

    Returns:
        For ``auto``: ``device`` when training runs on a GPU (CUDA or MPS), where
        the batched path costs the GPU almost nothing and frees the loader's CPU
        cores; on a CPU ``device`` for images up to :data:`CPU_BATCHED_MAX_SIZE`
        pixels and ``workers`` above, where per-image PIL in the worker
        processes is as fast and runs beside the model. An explicit
        ``workers``/``device`` is returned as is.
    """
    if augment_on != "auto":
        return augment_on
    name = accelerator.strip().lower()
    gpu_available = torch.cuda.is_available() or torch.backends.mps.is_available()
    on_gpu = name in {"gpu", "cuda", "mps"} or (name == "auto" and gpu_available)
    return "device" if on_gpu or image_size <= CPU_BATCHED_MAX_SIZE else "workers"


class DeviceAugmentation(nn.Module):
    """``uint8`` batch to normalised float batch, augmented when training.

    Args:
        aug: The augmentation preset (``data.transforms``), as on the workers path.
        mean: Normalisation mean (RGB, 0-1 scale).
        std: Normalisation standard deviation (RGB, 0-1 scale).
    """

    def __init__(
        self,
        aug: TransformsConfig,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        # Imported here: kornia takes a second to import, and only this path needs it.
        import kornia.augmentation as K

        ops: list[nn.Module] = []
        if aug.horizontal_flip_p > 0:
            ops.append(K.RandomHorizontalFlip(p=aug.horizontal_flip_p))
        if has_affine(aug):
            # The workers path fills with the mean colour rounded to uint8.
            fill = torch.tensor(mean_fill(mean), dtype=torch.float32) / 255.0
            ops.append(
                K.RandomAffine(
                    degrees=aug.rotation_degrees,
                    translate=(aug.translate, aug.translate) if aug.translate else None,
                    scale=aug.scale,
                    shear=aug.shear_degrees or None,
                    resample="bilinear",
                    padding_mode="fill",
                    fill_value=fill,
                    p=1.0,
                )
            )
        if has_colour_jitter(aug):
            ops.append(
                K.ColorJitter(
                    aug.brightness, aug.contrast, aug.saturation, aug.hue, p=1.0
                )
            )
        if aug.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=aug.grayscale_p))
        self.augment = nn.Sequential(*ops)
        # After normalisation, value 0 is the mean colour, as on the workers path.
        self.erase = (
            K.RandomErasing(p=aug.random_erasing_p)
            if aug.random_erasing_p > 0
            else nn.Identity()
        )
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` in float32 (what the eval transform does)."""
        mean, std = self.mean, self.std
        assert isinstance(mean, torch.Tensor)
        assert isinstance(std, torch.Tensor)
        return (images.to(torch.float32) / 255.0 - mean) / std

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
        x = images.to(torch.float32) / 255.0
        x = self.augment(x).clamp_(0.0, 1.0)
        mean, std = self.mean, self.std
        assert isinstance(mean, torch.Tensor)
        assert isinstance(std, torch.Tensor)
        out: torch.Tensor = self.erase((x - mean) / std)
        return out
