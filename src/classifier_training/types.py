"""Shared type definitions."""

from __future__ import annotations

from typing import TypedDict

import torch


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
