"""Model facts at fit start: parameters, size, FLOPs; ``model_info.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.model_summary.model_summary import ModelSummary
from torch import nn

from classifier_training.callbacks._common import should_write, training_data
from classifier_training.core.io import atomic_write_json
from classifier_training.core.run_files import MODEL_INFO_FILE
from classifier_training.plots import print_model_table


def summarize_model(pl_module: L.LightningModule, image_size: int) -> ModelSummary:
    """Lightning's ``ModelSummary`` with FLOPs for one ``1 x 3 x S x S`` image.

    The FLOPs are counted by Lightning (``torch.utils.flop_counter``, a
    multiply-add is 2 FLOPs) on ``example_input_array``, in eval mode without
    gradients; when the module sets no example input, a zero image is lent to it
    for the count and taken back afterwards.

    Args:
        pl_module: The Lightning module (its ``forward`` maps images to logits).
        image_size: Input side.

    Returns:
        The summary (``total_flops``, ``total_parameters``, ...).
    """
    own = pl_module.example_input_array
    if own is None:
        parameter = next(pl_module.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        pl_module.example_input_array = torch.zeros(
            1, 3, image_size, image_size, device=device
        )
    try:
        return ModelSummary(pl_module, max_depth=1)
    finally:
        if own is None:
            pl_module.example_input_array = None


def describe_model(pl_module: L.LightningModule, image_size: int) -> dict[str, Any]:
    """Parameter counts, size and FLOPs of the module's network.

    Args:
        pl_module: The Lightning module; its ``network`` attribute (else the
            module itself) is described.
        image_size: Input side (FLOPs depend on it).

    Returns:
        A JSON-serialisable description (``params_total``, ``params_trainable``,
        ``size_mb`` of parameters + buffers as stored, ``flops`` and ``gmacs`` per
        image, and parameters per top-level block).
    """
    network = getattr(pl_module, "network", pl_module)
    assert isinstance(network, nn.Module)
    summary = summarize_model(pl_module, image_size)
    tensors = [*network.parameters(), *network.buffers()]
    # Lightning's model_size counts parameters only, at the trainer's precision;
    # deployment cares about the stored bytes, buffers (BatchNorm) included.
    size = sum(t.numel() * t.element_size() for t in tensors)
    flops = int(summary.total_flops)
    return {
        "architecture": type(network).__name__,
        "params_total": int(summary.total_parameters),
        "params_trainable": int(summary.trainable_parameters),
        "size_mb": round(size / 1e6, 3),  # MB = 10^6 bytes, as Lightning reports
        "input_shape": [1, 3, image_size, image_size],
        "flops": flops,
        "gflops": round(flops / 1e9, 4),
        "gmacs": round(flops / 2e9, 4),
        "params_per_block": {
            name: sum(p.numel() for p in child.parameters())
            for name, child in network.named_children()
        },
    }


class ModelInfoCallback(Callback):
    """At fit start, print a model table and write ``model_info.json``.

    Args:
        output_dir: The run folder.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Describe the model and write the file."""
        if not should_write(trainer):
            return
        contract = training_data(trainer, type(self).__name__).contract
        info = {
            "arch": contract.arch,
            "num_classes": contract.num_classes,
            "image_size": contract.image_size,
            "precision": str(trainer.precision),
            **describe_model(pl_module, contract.image_size),
        }
        atomic_write_json(self.output_dir / MODEL_INFO_FILE, info)
        print_model_table(info)
