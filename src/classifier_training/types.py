"""Shared type definitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, Protocol, TypedDict, runtime_checkable

import torch

from classifier_training.core.contract import DeploymentContract
from classifier_training.core.readers import ExcludedRows, Sample


class ClassificationBatch(TypedDict):
    """A collated batch, as yielded by the data loaders.

    Attributes:
        images: Float tensor ``N x 3 x H x W``, normalised.
        labels: Long tensor ``N`` of class indices.
        groups: Evaluation splits with ``data.group_key`` only: long tensor
            ``N``, each row's track index within its split.
        group_labels: With ``groups``: long tensor ``N``, the class index of
            each row's track's true label.
    """

    images: torch.Tensor
    labels: torch.Tensor
    groups: NotRequired[torch.Tensor]
    group_labels: NotRequired[torch.Tensor]


class ClassificationSample(TypedDict):
    """One item of a dataset (before collation); see :class:`ClassificationBatch`."""

    images: torch.Tensor
    labels: int
    groups: NotRequired[int]
    group_labels: NotRequired[int]


@runtime_checkable
class GroupedData(Protocol):
    """A data module whose rows may form groups (tracks): ``data.group_key``.

    The model computes the track-level metrics when the data module it is fitted
    or evaluated with has a group key.
    """

    @property
    def group_key(self) -> str | None:
        """The metadata field naming each row's group, or ``None``."""
        ...


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
        """Rows of val/test left out because train lacks their label."""
        ...

    def split_samples(self, split: str) -> Sequence[Sample]:
        """Rows of ``split`` (``train``, ``valid``, ``test``) in loader order."""
        ...

    def eval_images(self, split: str, count: int) -> torch.Tensor | None:
        """Up to ``count`` images of ``split``, preprocessed as in evaluation."""
        ...
