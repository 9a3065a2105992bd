"""Lightning callbacks: EMA, verified ONNX export and the run's artifacts.

Each is configured in ``conf/callbacks/*.yaml`` and switched off with
``callbacks.<name>=null``. Artifact callbacks write atomically, only on global
rank 0, and never during Lightning's sanity check.
"""

from classifier_training.callbacks.augmentation_preview import (
    AugmentationPreviewCallback,
)
from classifier_training.callbacks.checkpoint import SlimModelCheckpoint
from classifier_training.callbacks.confusion_matrix import ConfusionMatrixCallback
from classifier_training.callbacks.ema import EMACallback, WarmupEMA
from classifier_training.callbacks.model_info import ModelInfoCallback
from classifier_training.callbacks.onnx_export import ONNXExportCallback
from classifier_training.callbacks.plotting import TrainingHistoryCallback
from classifier_training.callbacks.progress import CompactProgressBar
from classifier_training.callbacks.sampler import SamplerDistributionCallback
from classifier_training.callbacks.statistics import DatasetStatisticsCallback
from classifier_training.callbacks.visualization import SamplePredictionsCallback

__all__ = [
    "AugmentationPreviewCallback",
    "CompactProgressBar",
    "ConfusionMatrixCallback",
    "DatasetStatisticsCallback",
    "EMACallback",
    "ModelInfoCallback",
    "ONNXExportCallback",
    "SamplePredictionsCallback",
    "SamplerDistributionCallback",
    "SlimModelCheckpoint",
    "TrainingHistoryCallback",
    "WarmupEMA",
]
