"""MixUp and CutMix at batch level (``torchvision.transforms.v2``).

:class:`BatchMixer` turns a batch of images and hard labels into mixed images and
soft targets (one row per image, summing to 1), which ``F.cross_entropy`` takes
as class probabilities, so label smoothing and class weights apply to them as to
hard labels. The mixing happens on the collated batch inside the training step,
after the sampler has drawn it, so the weighted sampler is unaffected; validation
and test never mix.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchvision.transforms import v2


class BatchMixer:
    """MixUp, CutMix, or a random choice of the two, applied with a probability.

    The values' ranges are the rules of
    :class:`~classifier_training.models.settings.ModelSettings`, which validates
    the ``model.*`` keys they come from.

    Args:
        num_classes: Number of classes (width of the soft targets).
        mixup_alpha: MixUp's Beta(alpha, alpha) parameter; 0 disables MixUp.
        cutmix_alpha: CutMix's Beta(alpha, alpha) parameter; 0 disables CutMix.
        prob: Probability that a batch is mixed at all (when both are on, each
            mixed batch uses one of them, chosen with equal odds).
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        prob: float = 1.0,
    ) -> None:
        """Build the v2 transform (see class docstring)."""
        self.num_classes = num_classes
        self.prob = prob
        choices: list[v2.Transform] = []
        if mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.transform: v2.Transform | None = (
            None
            if not choices
            else choices[0]
            if len(choices) == 1
            else v2.RandomChoice(choices)
        )

    @property
    def enabled(self) -> bool:
        """Whether any batch can be mixed."""
        return self.transform is not None and self.prob > 0

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch (or leave it, with probability ``1 - prob``).

        Args:
            images: ``N x C x H x W`` float images.
            labels: ``N`` class indices.

        Returns:
            The images and ``N x num_classes`` float targets (one-hot rows when
            the batch was left unmixed).
        """
        # No random draw unless it can matter: runs without mixing keep their
        # random stream (and their numbers).
        mix = self.enabled and (self.prob >= 1 or float(torch.rand(())) < self.prob)
        if not mix or self.transform is None:
            return images, F.one_hot(labels, self.num_classes).to(images.dtype)
        mixed_images, targets = self.transform(images, labels)
        return mixed_images, targets.to(images.dtype)


def dominant_labels(targets: torch.Tensor) -> torch.Tensor:
    """The hard label with the largest share of each soft target row."""
    return targets.argmax(dim=1)
