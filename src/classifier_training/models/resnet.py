"""The seed's model classes: torchvision ResNets with a new head (``model=resnetNN``).

Each is :class:`~classifier_training.models.classifier.ImageClassifier` whose
``arch`` defaults to its ResNet, registered under the seed's option name, so
``model=resnet50`` builds :class:`ResNet50ClassificationModel` and scripts that
import these names keep working. Like every option, ``model.arch=<name>`` still
replaces the network (the class then only names where the defaults came from;
``model=image_classifier`` is the neutral name for that).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from classifier_training.models.classifier import ImageClassifier
from classifier_training.models.settings import ImageClassifierSettings, ModelSettings
from classifier_training.utils.hydra import register


class ResNet18Settings(ImageClassifierSettings):
    """:class:`ImageClassifierSettings` with ``arch`` defaulting to ``resnet18``."""

    arch: str = Field(default="resnet18", min_length=1)


class ResNet34Settings(ImageClassifierSettings):
    """:class:`ImageClassifierSettings` with ``arch`` defaulting to ``resnet34``."""

    arch: str = Field(default="resnet34", min_length=1)


class ResNet50Settings(ImageClassifierSettings):
    """:class:`ImageClassifierSettings` with ``arch`` defaulting to ``resnet50``."""

    arch: str = Field(default="resnet50", min_length=1)


@register(group="model", name="resnet18")
class ResNet18ClassificationModel(ImageClassifier):
    """ResNet-18 (ImageNet weights unless ``pretrained=False``) with a new head."""

    settings_model: ClassVar[type[ModelSettings]] = ResNet18Settings


@register(group="model", name="resnet34")
class ResNet34ClassificationModel(ImageClassifier):
    """ResNet-34 (ImageNet weights unless ``pretrained=False``) with a new head."""

    settings_model: ClassVar[type[ModelSettings]] = ResNet34Settings


@register(group="model", name="resnet50")
class ResNet50ClassificationModel(ImageClassifier):
    """ResNet-50 (ImageNet weights unless ``pretrained=False``) with a new head."""

    settings_model: ClassVar[type[ModelSettings]] = ResNet50Settings
