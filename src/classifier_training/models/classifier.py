"""``ImageClassifier``: any torchvision classification model (or ``timm/<name>``).

One class serves every architecture: ``settings.arch`` names the network, which
:func:`~classifier_training.models.factory.build_network` builds with a head for
``num_classes``. The seed's classes (:mod:`classifier_training.models.resnet`,
``model=resnet18|resnet34|resnet50``) are this class with another ``arch``
default; ``model.arch=<name>`` replaces the network of any of them.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.factory import build_network
from classifier_training.models.settings import ImageClassifierSettings, ModelSettings
from classifier_training.utils.hydra import register


@register(group="model", name="image_classifier")
class ImageClassifier(BaseClassificationModel):
    """An image classifier whose network is chosen by name.

    Takes the arguments of :class:`BaseClassificationModel`; its settings are
    :class:`~classifier_training.models.settings.ImageClassifierSettings`
    (``arch``, ``pretrained``, ``weights_path`` and the shared training recipe),
    e.g. ``ImageClassifier(num_classes=3, arch="efficientnet_b0",
    pretrained=False, label_smoothing=0.0)``.
    """

    settings_model: ClassVar[type[ModelSettings]] = ImageClassifierSettings
    settings: ImageClassifierSettings

    def build_network(self, num_classes: int) -> nn.Module:
        """The ``arch`` network with a ``num_classes`` head (see ``build_network``)."""
        return build_network(
            self.settings.arch,
            num_classes,
            pretrained=self.settings.pretrained,
            weights_path=self.settings.weights_path,
        )
