"""Models. Importing this package registers the model options in Hydra's ConfigStore."""

from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.classifier import ImageClassifier

__all__ = ["BaseClassificationModel", "ImageClassifier"]
