"""Calibrate a finished run: fit a temperature on the validation logits of best.ckpt.

``train.py`` calls :func:`calibrate_run` after the final evaluation. It runs the
best checkpoint's network over the validation (and test) loaders once, fits the
temperature on validation
(:func:`~classifier_training.core.calibration.fit_temperature`), and records it
where a deployment reads it: ``labels_mapping.json`` and the contract inside
``best.ckpt``. It also writes ``reliability_diagram.png`` and
returns ECE before/after per split, the risk-coverage table and per-class
precision/recall/F1/support for ``metrics.json``. The ONNX graph keeps raw
logits: the temperature lives in the contract.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from loguru import logger
from torch import nn
from torch.utils.data import DataLoader

from classifier_training.checkpoints import load_network_weights, read_checkpoint
from classifier_training.core.calibration import (
    calibration_summary,
    fit_temperature,
    reliability,
    softmax,
)
from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    DeploymentContract,
    write_labels_mapping,
)
from classifier_training.core.io import atomic_path
from classifier_training.core.metrics import confusion_counts, per_class_scores
from classifier_training.core.readers import ExcludedRows, display_name
from classifier_training.core.run_files import (
    LABELS_MAPPING_FILE,
    MISTAKES_FILE,
    RELIABILITY_FILE,
    eval_file,
)
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.inference.evaluate import Evaluation, plot_mistakes
from classifier_training.plots import save_figure
from classifier_training.plots.calibration import plot_reliability


@torch.inference_mode()
def collect_logits(
    network: nn.Module, loader: DataLoader[Any], device: torch.device
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Raw logits and targets of every batch of ``loader`` (float32, in order)."""
    logits, targets = [], []
    for batch in loader:
        out = network(batch["images"].to(device))
        logits.append(out.float().cpu().numpy())
        targets.append(batch["labels"].cpu().numpy())
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(logits), np.concatenate(targets).astype(np.int64)


def full_split_loader(datamodule: ImageFolderDataModule, split: str) -> DataLoader[Any]:
    """Every row of ``split`` in file order, whatever the rank (under DDP the data
    module's own loaders give each rank a share; rank 0 calibrates on all)."""
    return DataLoader(
        datamodule.datasets[split],
        batch_size=datamodule.config.batch_size,
        shuffle=False,
        num_workers=datamodule.config.num_workers,
    )


def per_class_table(
    logits: npt.NDArray[Any], targets: npt.NDArray[Any], class_names: list[str]
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support per class (display names, index order)."""
    matrix = confusion_counts(targets, logits.argmax(axis=1), len(class_names))
    scores = per_class_scores(matrix)
    return {
        display_name(name): {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
        }
        for i, name in enumerate(class_names)
    }


def store_temperature_in_checkpoint(path: Path, temperature: float) -> None:
    """Rewrite the contract inside a checkpoint with ``temperature`` (atomically).

    The checkpoint carries its deployment contract, so a copied ``best.ckpt``
    predicts with calibrated confidences alone.
    """
    checkpoint = dict(read_checkpoint(path))
    for key, value in checkpoint.items():
        if isinstance(value, Mapping) and CHECKPOINT_STATE_KEY in value:
            state = dict(value[CHECKPOINT_STATE_KEY])
            state["temperature"] = temperature
            state["format_version"] = DeploymentContract.model_fields[
                "format_version"
            ].default
            checkpoint[key] = {**value, CHECKPOINT_STATE_KEY: state}
            break
    else:
        logger.warning(f"{path}: no deployment contract to store the temperature in")
        return
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def write_mistakes(
    datamodule: ImageFolderDataModule,
    split: str,
    probs: npt.NDArray[Any],
    targets: npt.NDArray[Any],
    output_dir: Path,
    limit: int = 16,
) -> list[dict[str, Any]]:
    """Draw ``eval/mistakes_<split>.png`` and list the most confident mistakes."""
    samples = datamodule.split_samples(split)
    if len(samples) != len(targets):  # rows replaced at load: no reliable pairing
        return []
    evaluation = Evaluation(
        class_names=list(datamodule.contract.class_names),
        samples=samples,
        targets=targets,
        probs=probs,
        excluded=ExcludedRows(0, {}),
    )
    plot_mistakes(evaluation, limit, output_dir / eval_file(MISTAKES_FILE, split))
    return evaluation.confident_mistakes(limit)


def calibrate_run(
    network: nn.Module,
    datamodule: ImageFolderDataModule,
    best: Path | None,
    output_dir: Path,
) -> dict[str, Any]:
    """Fit the temperature on validation and record it with the run's deployment.

    Args:
        network: The trained network (a copy is loaded with ``best``'s weights;
            the original is left untouched).
        datamodule: The run's data module (set up for fit).
        best: The best checkpoint (``None``: the network's current weights are
            used and no checkpoint is rewritten).
        output_dir: The run folder (``labels_mapping.json``, the diagram).

    Returns:
        ``temperature``, ``fitted_on`` and per split (``val``, ``test``): rows,
        ECE and NLL before/after, the risk-coverage table and the per-class
        table and the most confident mistakes (``eval/mistakes_<split>.png``
        draws them); ``reliability_diagram`` (file name).
    """
    device = next(network.parameters()).device  # where training left it
    model = copy.deepcopy(network).float().eval()
    if best is not None:
        model = load_network_weights(model.cpu(), best)
    model = model.to(device)
    names = list(datamodule.contract.class_names)
    splits: dict[str, tuple[npt.NDArray[Any], npt.NDArray[Any]]] = {}
    for split in ("val", "test"):
        if split == "test" and not datamodule.has_test:
            continue
        splits[split] = collect_logits(
            model, full_split_loader(datamodule, split), device
        )
    temperature = fit_temperature(*splits["val"])
    result: dict[str, Any] = {"temperature": temperature, "fitted_on": "val"}
    panels = {}
    for split, (logits, targets) in splits.items():
        if len(targets) == 0:
            continue
        result[split] = {
            **calibration_summary(logits, targets, temperature),
            "per_class": per_class_table(logits, targets, names),
            "confident_mistakes": write_mistakes(
                datamodule, split, softmax(logits, temperature), targets, output_dir
            ),
        }
        panels[split] = (
            reliability(softmax(logits), targets),
            reliability(softmax(logits, temperature), targets),
        )
    save_figure(plot_reliability(panels, temperature), output_dir / RELIABILITY_FILE)
    result["reliability_diagram"] = RELIABILITY_FILE
    contract = datamodule.contract.model_copy(update={"temperature": temperature})
    write_labels_mapping(contract, output_dir / LABELS_MAPPING_FILE)
    if best is not None:
        store_temperature_in_checkpoint(best, temperature)
    val = result.get("val", {})
    logger.info(
        f"calibration: temperature {temperature:.3f} (fitted on validation); "
        f"val ECE {val.get('ece_before', 0):.3f} -> {val.get('ece_after', 0):.3f}"
    )
    return result
