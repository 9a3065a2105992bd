"""Data pipeline: readers for both dataset layouts, dataset, sampler, datamodule.

The torch-based names are imported on first use, so that the torch-free modules
(readers, image_io, preprocessing) serve the ONNX inference path without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classifier_training.core.readers import Sample, read_split
    from classifier_training.data.datamodule import ImageFolderDataModule
    from classifier_training.data.dataset import JerseyNumberDataset
    from classifier_training.data.sampler import TrackingWeightedRandomSampler

_HOMES = {
    "ImageFolderDataModule": "datamodule",
    "JerseyNumberDataset": "dataset",
    "Sample": "readers",
    "read_split": "readers",
    "TrackingWeightedRandomSampler": "sampler",
}

__all__ = [
    "ImageFolderDataModule",
    "JerseyNumberDataset",
    "Sample",
    "TrackingWeightedRandomSampler",
    "read_split",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_HOMES[name]}")
    return getattr(module, name)
