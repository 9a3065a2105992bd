"""Model facts at fit start: parameters, size, FLOPs; ``model_info.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from classifier_training.callbacks._common import get_datamodule, should_write
from classifier_training.checkpoints import model_class_path
from classifier_training.labels_mapping import LABELS_MAPPING_FILE, write_labels_mapping
from classifier_training.utils.io import atomic_write_json

JSON_NAME = "model_info.json"


def count_flops(network: nn.Module, image_size: int) -> int:
    """FLOPs of one forward pass on a ``1 x 3 x S x S`` input.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2
    FLOPs). Runs in eval mode without gradients, so BatchNorm statistics are not
    touched; the training mode is restored afterwards.

    Args:
        network: The network.
        image_size: Input side.

    Returns:
        Total FLOPs.
    """
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = network.training
    network.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            network(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        network.train(was_training)
    return int(counter.get_total_flops())


def describe_model(network: nn.Module, image_size: int) -> dict[str, Any]:
    """Parameter counts, size and FLOPs of ``network``.

    Args:
        network: The network.
        image_size: Input side (FLOPs depend on it).

    Returns:
        A JSON-serialisable description (``params_total``, ``params_trainable``,
        ``size_mb`` of parameters + buffers as stored, ``flops`` and ``gmacs`` per
        image, and parameters per top-level block).
    """
    params = list(network.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    size = sum(t.numel() * t.element_size() for t in [*params, *network.buffers()])
    flops = count_flops(network, image_size)
    blocks = {
        name: sum(p.numel() for p in child.parameters())
        for name, child in network.named_children()
    }
    return {
        "architecture": type(network).__name__,
        "params_total": total,
        "params_trainable": trainable,
        "size_mb": round(size / 1e6, 3),  # MB = 10^6 bytes, as Lightning reports
        "input_shape": [1, 3, image_size, image_size],
        "flops": flops,
        "gflops": round(flops / 1e9, 4),
        "gmacs": round(flops / 2e9, 4),
        "params_per_block": blocks,
    }


class ModelInfoCallback(Callback):
    """At fit start, print a model table and write ``model_info.json``.

    Also writes ``labels_mapping.json`` in the same folder when it is missing
    (``classifier-train`` writes it at start; this covers other entry points),
    using the same :func:`~classifier_training.labels_mapping.write_labels_mapping`.

    Args:
        output_dir: The run folder.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.info: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Describe the model and write the files."""
        if not trainer.is_global_zero:
            return
        datamodule = get_datamodule(trainer, type(self).__name__)
        network = getattr(pl_module, "network", pl_module)
        assert isinstance(network, nn.Module)
        info = describe_model(network, datamodule.config.image_size)
        info = {
            "model_class": model_class_path(pl_module),
            "num_classes": len(datamodule.class_to_idx),
            "image_size": datamodule.config.image_size,
            "precision": str(trainer.precision),
            **info,
        }
        self.info = info
        if not should_write(trainer):
            return
        atomic_write_json(self.output_dir / JSON_NAME, info)
        mapping = self.output_dir / LABELS_MAPPING_FILE
        if not mapping.exists():
            write_labels_mapping(mapping, datamodule.class_to_idx, datamodule.config)
        self.print_table(info)

    @staticmethod
    def print_table(info: dict[str, Any]) -> None:
        """Show the main numbers as a Rich table."""
        table = Table(title="Model")
        table.add_column("")
        table.add_column("value", justify="right")
        table.add_row("class", str(info["model_class"]).rsplit(".", 1)[-1])
        table.add_row("classes", str(info["num_classes"]))
        table.add_row("parameters", f"{info['params_total']:,}")
        table.add_row("trainable", f"{info['params_trainable']:,}")
        table.add_row("size", f"{info['size_mb']:.2f} MB")
        size = info["image_size"]
        table.add_row(f"GFLOPs @ {size}x{size}", f"{info['gflops']:.3f}")
        table.add_row("GMACs", f"{info['gmacs']:.3f}")
        Console().print(table)
