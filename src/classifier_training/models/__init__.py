"""Models. Importing this package registers every model in Hydra's ConfigStore."""

from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.resnet import (
    ResNet18ClassificationModel,
    ResNet34ClassificationModel,
    ResNet50ClassificationModel,
)

__all__ = [
    "BaseClassificationModel",
    "ResNet18ClassificationModel",
    "ResNet34ClassificationModel",
    "ResNet50ClassificationModel",
]
