"""Data pipeline: readers for both dataset layouts, dataset, sampler, datamodule."""

from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.dataset import JerseyNumberDataset
from classifier_training.data.readers import Sample, read_split
from classifier_training.data.sampler import TrackingWeightedRandomSampler

__all__ = [
    "ImageFolderDataModule",
    "JerseyNumberDataset",
    "Sample",
    "TrackingWeightedRandomSampler",
    "read_split",
]
