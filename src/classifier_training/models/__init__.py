"""Models. Importing this package registers the model options in Hydra's ConfigStore.

Every module of this package is imported (a new model file here registers itself
with ``@register``, as the seed's "add a model" recipe says), and so is every
module named by an entry point of the group ``classifier_training.models`` in an
installed distribution (models kept in a package of their own; see
:mod:`classifier_training.models.plugins`).
"""

from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.classifier import ImageClassifier
from classifier_training.models.plugins import import_model_modules
from classifier_training.models.resnet import (
    ResNet18ClassificationModel,
    ResNet34ClassificationModel,
    ResNet50ClassificationModel,
)
from classifier_training.models.settings import ImageClassifierSettings, ModelSettings

import_model_modules(__path__, __name__)

__all__ = [
    "BaseClassificationModel",
    "ImageClassifier",
    "ImageClassifierSettings",
    "ModelSettings",
    "ResNet18ClassificationModel",
    "ResNet34ClassificationModel",
    "ResNet50ClassificationModel",
]
