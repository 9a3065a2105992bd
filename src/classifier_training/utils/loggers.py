"""Loggers used from ``conf/logging``, and what the run sends to the trackers.

The trackers (TensorBoard, Weights & Biases) receive the epoch metrics through
Lightning; this module adds what Lightning does not send: the composed config
(:func:`log_config`), images such as the per-epoch confusion matrix and sample
grid (:func:`log_image`), the final calibration numbers and, for W&B, the
deployment (``model.onnx`` + ``labels_mapping.json``) as a model artifact
(:func:`log_deployment`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    TensorBoardLogger,
    WandbLogger,
)
from loguru import logger
from PIL import Image

from classifier_training.core.run_files import (
    LABELS_MAPPING_FILE,
    MODEL_ONNX,
    REPORT_FILE,
)

__all__ = [  # CSVLogger: Lightning's own, named here by earlier runs' configs
    "ARTIFACT_FILES",
    "CSVLogger",
    "finish_trackers",
    "log_config",
    "log_deployment",
    "log_final_metrics",
    "log_image",
    "trackers",
    "wandb_has_credentials",
    "wandb_logger",
]

#: Files of the W&B model artifact (those present are added).
ARTIFACT_FILES = (MODEL_ONNX, LABELS_MAPPING_FILE, REPORT_FILE)


def wandb_has_credentials() -> bool:
    """Whether a W&B API key is configured (environment or ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that runs offline when no API key is configured.

    Args:
        mode: ``auto`` (online only with credentials), ``online``, ``offline``
            or ``disabled``.
        **kwargs: Passed to ``WandbLogger`` (project, name, save_dir, ...).

    Returns:
        The logger.
    """
    if mode == "auto":
        mode = "online" if wandb_has_credentials() else "offline"
        if mode == "offline":
            logger.info(
                "no W&B API key found: logging offline (sync later with `wandb sync`)"
            )
    Path(kwargs.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
    return WandbLogger(offline=mode == "offline", mode=mode, **kwargs)


def trackers(loggers: Iterable[Logger]) -> list[Logger]:
    """The TensorBoard and W&B loggers among ``loggers``."""
    return [lg for lg in loggers if isinstance(lg, TensorBoardLogger | WandbLogger)]


def log_config(loggers: Iterable[Logger], config: Mapping[str, Any]) -> None:
    """Send the composed config to the trackers.

    W&B stores it as the run config; TensorBoard as hyper-parameters (flattened)
    and as a YAML text entry, which stays readable however deep the config is.

    Args:
        loggers: The run's loggers (CSV ones are skipped: ``.hydra/`` has it).
        config: The composed config, resolved, as plain containers.
    """
    for tracker in trackers(loggers):
        tracker.log_hyperparams(dict(config))
        if isinstance(tracker, TensorBoardLogger):
            text = yaml.safe_dump(dict(config), sort_keys=False)
            # Markdown code block: TensorBoard's text plugin renders Markdown.
            tracker.experiment.add_text("config", f"```yaml\n{text}```")


def log_image(loggers: Iterable[Logger], key: str, path: Path, step: int) -> None:
    """Send a PNG the run wrote (confusion matrix, sample grid) to the trackers.

    Args:
        loggers: The run's loggers.
        key: Name of the image series (``val/confusion_matrix``).
        path: The PNG.
        step: The global step it belongs to.
    """
    found = trackers(loggers)
    if not found:
        return
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    for tracker in found:
        if isinstance(tracker, WandbLogger):
            tracker.log_image(key=key, images=[str(path)], step=step)
        elif isinstance(tracker, TensorBoardLogger):
            tracker.experiment.add_image(key, pixels, step, dataformats="HWC")


def log_final_metrics(loggers: Iterable[Logger], metrics: Mapping[str, float]) -> None:
    """Send numbers computed after fit (calibration) to the trackers."""
    for tracker in trackers(loggers):
        tracker.log_metrics(dict(metrics))


def log_deployment(loggers: Iterable[Logger], output_dir: Path) -> None:
    """Upload ``model.onnx`` + ``labels_mapping.json`` as a W&B model artifact.

    The artifact is named ``model-<run id>`` (type ``model``); offline runs keep
    it with the run until ``wandb sync``.

    Args:
        loggers: The run's loggers (only W&B ones act).
        output_dir: The run folder.
    """
    files = [output_dir / name for name in ARTIFACT_FILES]
    files = [path for path in files if path.is_file()]
    for tracker in loggers:
        if not isinstance(tracker, WandbLogger) or not files:
            continue
        import wandb

        run = tracker.experiment
        artifact = wandb.Artifact(
            name=f"model-{run.id}",
            type="model",
            description="ONNX model (raw logits) and its deployment contract",
        )
        for path in files:
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact, aliases=["latest"])


def finish_trackers(loggers: Iterable[Logger]) -> None:
    """Flush and close the trackers once the run's last numbers are logged.

    Lightning finalizes its loggers after ``trainer.test``; what the run logs
    after that (calibration, the W&B artifact) would otherwise wait on exit
    hooks. Finishing the W&B run also lets a Hydra multirun start the next one.
    """
    for tracker in trackers(loggers):
        if isinstance(tracker, WandbLogger):
            tracker.experiment.finish()
        else:
            tracker.finalize("success")
