"""Shared type definitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypedDict, runtime_checkable

import torch

from classifier_training.core.contract import DeploymentContract
from classifier_training.core.readers import ExcludedRows, Sample


class ClassificationBatch(TypedDict):
    """A collated batch, as yielded by the data loaders.

    Attributes:
        images: Float tensor ``N x 3 x H x W``, normalised.
        labels: Long tensor ``N`` of class indices.
    """

    images: torch.Tensor
    labels: torch.Tensor


class ClassificationSample(TypedDict):
    """One item of a dataset (before collation)."""

    images: torch.Tensor
    labels: int


@runtime_checkable
class TrainingData(Protocol):
    """What the artifact callbacks read from the data module.

    :class:`~classifier_training.data.datamodule.ImageFolderDataModule` implements
    it; any data module that does can drive the callbacks.
    """

    @property
    def contract(self) -> DeploymentContract:
        """The run's deployment contract (classes, input size, normalisation)."""
        ...

    @property
    def excluded(self) -> Mapping[str, ExcludedRows]:
        """Rows of valid/test left out because train lacks their label."""
        ...

    def split_samples(self, split: str) -> Sequence[Sample]:
        """Rows of ``split`` (``train``, ``valid``, ``test``) in loader order."""
        ...

    def eval_images(self, split: str, count: int) -> torch.Tensor | None:
        """Up to ``count`` images of ``split``, preprocessed as in evaluation."""
        ...
