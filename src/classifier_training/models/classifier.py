"""``ImageClassifier``: any torchvision classification model (or ``timm/<name>``).

One class serves every architecture: ``arch`` names the network, which
:func:`~classifier_training.models.factory.build_network` builds with a head for
``num_classes``. The options ``model=resnet18|resnet34|resnet50`` are this class
registered with another ``arch`` default; ``model.arch=<name>`` works on any.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.factory import build_network
from classifier_training.models.optim import OptimizerFactory, SchedulerFactory
from classifier_training.utils.hydra import register


@register(group="model", name="resnet50", arch="resnet50")
@register(group="model", name="resnet34", arch="resnet34")
@register(group="model", name="resnet18", arch="resnet18")
class ImageClassifier(BaseClassificationModel):
    """An image classifier whose network is chosen by name.

    Args:
        num_classes: Number of output classes.
        class_names: Names in class-index order.
        class_weights: Per-class loss weights (used when ``class_weighted_loss``).
        arch: A torchvision classification model name (``resnet18``,
            ``efficientnet_b0``, ``mobilenet_v3_large``, ``convnext_tiny``, …) or
            ``timm/<name>`` (needs ``timm``).
        pretrained: Start from the architecture's ImageNet weights.
        weights_path: Start from a local weights file instead (takes precedence).
        optimizer: See :class:`BaseClassificationModel`.
        scheduler: See :class:`BaseClassificationModel`.
        label_smoothing: Label smoothing of the training loss.
        class_weighted_loss: Weight the training loss by inverse class frequency.
        mixup_alpha: See :class:`BaseClassificationModel`.
        cutmix_alpha: See :class:`BaseClassificationModel`.
        mixup_prob: See :class:`BaseClassificationModel`.
        mixup_off_last_epochs: See :class:`BaseClassificationModel`.
        scale_lr_with_batch: See :class:`BaseClassificationModel`.
        lr_reference_batch: See :class:`BaseClassificationModel`.
        channels_last: See :class:`BaseClassificationModel` (``null``: on CUDA).
        compile: See :class:`BaseClassificationModel`.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        arch: str = "resnet18",
        pretrained: bool = True,
        weights_path: str | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.1,
        class_weighted_loss: bool = False,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        mixup_off_last_epochs: int = 0,
        scale_lr_with_batch: bool = False,
        lr_reference_batch: int = 256,
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        self.arch = arch
        self.pretrained = pretrained
        self.weights_path = weights_path
        super().__init__(
            num_classes,
            class_names=class_names,
            class_weights=class_weights,
            optimizer=optimizer,
            scheduler=scheduler,
            label_smoothing=label_smoothing,
            class_weighted_loss=class_weighted_loss,
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            mixup_prob=mixup_prob,
            mixup_off_last_epochs=mixup_off_last_epochs,
            scale_lr_with_batch=scale_lr_with_batch,
            lr_reference_batch=lr_reference_batch,
            channels_last=channels_last,
            compile=compile,
        )

    def build_network(self, num_classes: int) -> nn.Module:
        """The ``arch`` network with a ``num_classes`` head (see ``build_network``)."""
        return build_network(
            self.arch,
            num_classes,
            pretrained=self.pretrained,
            weights_path=self.weights_path,
        )
