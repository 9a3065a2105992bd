"""Figures and Rich tables, torch-free: used by the training callbacks and by
``classifier-evaluate`` alike, so both draw the same pictures."""

from classifier_training.plots.augmentation import (
    AugmentedTile,
    render_augmentation_grid,
    target_caption,
)
from classifier_training.plots.confusion import plot_confusion_matrix, top_confusions
from classifier_training.plots.dataset import plot_class_counts, print_statistics
from classifier_training.plots.figures import DPI, figure_png, save_figure, save_image
from classifier_training.plots.grid import BACKGROUND, GridTile, render_grid
from classifier_training.plots.history import (
    plot_learning_rate,
    plot_metric_curves,
    plot_runs_metric,
    read_history,
    read_history_file,
)
from classifier_training.plots.tables import print_evaluation, print_model_table

__all__ = [
    "BACKGROUND",
    "DPI",
    "AugmentedTile",
    "GridTile",
    "figure_png",
    "plot_class_counts",
    "plot_confusion_matrix",
    "plot_learning_rate",
    "plot_metric_curves",
    "plot_runs_metric",
    "print_evaluation",
    "print_model_table",
    "print_statistics",
    "read_history",
    "read_history_file",
    "render_augmentation_grid",
    "render_grid",
    "save_figure",
    "save_image",
    "target_caption",
    "top_confusions",
]
