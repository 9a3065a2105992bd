"""Training entry point: ``classifier-train`` / ``python -m classifier_training.train``.

Composes the Hydra config, validates the data, builds data module, model,
callbacks, loggers and trainer; fits; evaluates the best checkpoint on valid and
test; writes ``metrics.json`` and prints a summary.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from loguru import logger
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

import classifier_training.models  # noqa: F401  (registers model configs)
from classifier_training.config import load_data_config
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import DataError
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.resnet import WeightsError

METRICS_FILE = "metrics.json"


class ConfigError(ValueError):
    """The composed configuration cannot be used (message names the key)."""


def build_datamodule(cfg: DictConfig) -> ImageFolderDataModule:
    """Validate ``cfg.data`` (+ ``cfg.transforms``) and set the data module up."""
    values = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(values, dict)
    values["transforms"] = OmegaConf.to_container(cfg.transforms, resolve=True)
    datamodule = ImageFolderDataModule(
        load_data_config({str(k): v for k, v in values.items()}),
        arch=cfg.model.get("arch") or get_class(cfg.model._target_).arch,  # type: ignore[attr-defined]
    )
    datamodule.setup("fit")
    return datamodule


def build_model(
    cfg: DictConfig, datamodule: ImageFolderDataModule
) -> BaseClassificationModel:
    """Instantiate ``cfg.model`` with class count, names and weights from the data."""
    try:
        model = instantiate(
            cfg.model,
            _convert_="all",  # plain Python hparams: checkpoints load weights_only
            num_classes=datamodule.num_classes,
            class_names=datamodule.class_names,
            class_weights=datamodule.class_weights,
        )
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, WeightsError):
            raise error.__cause__ from None  # already says what to do
        raise ConfigError(f"model: {error}") from None
    if not isinstance(model, BaseClassificationModel):
        raise ConfigError(
            f"model._target_ must build a BaseClassificationModel, got {type(model)}"
        )
    if (
        model.hparams["class_weighted_loss"]
        and datamodule.config.sampler.mode != "disabled"
    ):
        logger.warning(
            "model.class_weighted_loss=true with data.sampler.mode="
            f"{datamodule.config.sampler.mode}: both correct for imbalance, together "
            "they over-correct; consider data.sampler.mode=disabled"
        )
    return model


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """Instantiate every enabled entry of ``cfg.callbacks`` (``null`` disables one)."""
    callbacks: list[Callback] = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        try:
            callback = instantiate(node, _convert_="partial")
        except hydra.errors.InstantiationException as error:
            raise ConfigError(f"callbacks.{name}: {error}") from None
        callbacks.append(callback)
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Instantiate every entry of ``cfg.logging``."""
    return [
        instantiate(node)
        for node in (cfg.get("logging") or {}).values()
        if node is not None
    ]


def find_checkpoint_callback(callbacks: list[Callback]) -> ModelCheckpoint:
    """The ``ModelCheckpoint`` that monitors a metric (it selects the best weights)."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            return callback
    raise ConfigError("callbacks: a ModelCheckpoint with a `monitor` is required")


def refuse_foreign_checkpoints(
    checkpoint: ModelCheckpoint, ckpt_path: str | None
) -> None:
    """Never let a new run write into (or silently resume) another run's checkpoints."""
    if ckpt_path is not None or checkpoint.dirpath is None:
        return
    folder = Path(checkpoint.dirpath)
    if folder.is_dir() and any(folder.glob("*.ckpt")):
        raise ConfigError(
            f"{folder} already holds checkpoints of another run; choose a new "
            "hydra.run.dir, or resume explicitly with ckpt_path=<file>"
        )


def split_metrics(results: Mapping[str, float], stage: str) -> dict[str, Any]:
    """Nest flat ``stage/...`` metrics: top-k, loss and per-class accuracy by name."""
    summary: dict[str, Any] = {}
    per_class: dict[str, float] = {}
    for key, value in sorted(results.items()):
        name = key.removeprefix(f"{stage}/")
        if name.startswith("acc_class/"):
            per_class[name.removeprefix("acc_class/")] = float(value)
        elif key.startswith(f"{stage}/"):
            summary[name] = float(value)
    summary["per_class_acc"] = per_class
    return summary


def print_summary(metrics: dict[str, Any], output_dir: Path) -> None:
    """Print the final numbers as a Rich table."""
    table = Table(title=f"Results ({output_dir})")
    table.add_column("split")
    for column in ("acc_top1", "acc_top5", "loss"):
        table.add_column(column, justify="right")
    for split in ("val", "test"):
        if split in metrics:
            row = metrics[split]
            table.add_row(
                split,
                *(
                    f"{row.get(c, float('nan')):.4f}"
                    for c in ("acc_top1", "acc_top5", "loss")
                ),
            )
    Console().print(table)
    if "test" in metrics:
        print(f"test top-1: {100 * metrics['test']['acc_top1']:.2f}%")
    print(f"run folder: {output_dir}")


def train(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run one training job as configured and return what ``metrics.json`` holds.

    Args:
        cfg: The composed config.
        output_dir: The run folder.

    Returns:
        The final metrics.
    """
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    callbacks = build_callbacks(cfg)
    checkpoint = find_checkpoint_callback(callbacks)
    refuse_foreign_checkpoints(checkpoint, cfg.get("ckpt_path"))
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg) or False
    )

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    best = checkpoint.best_model_path or None
    if best is None:
        logger.warning("no best checkpoint was saved; evaluating the final weights")
    metrics: dict[str, Any] = {}
    (val_results,) = trainer.validate(
        model, datamodule=datamodule, ckpt_path=best, verbose=False
    )
    metrics["val"] = split_metrics(val_results, "val")
    if datamodule.has_test:
        (test_results,) = trainer.test(
            model, datamodule=datamodule, ckpt_path=best, verbose=False
        )
        metrics["test"] = split_metrics(test_results, "test")
    data_summary = datamodule.summary()
    metrics["excluded_rows"] = data_summary["excluded_rows"]
    metrics["skipped_images"] = data_summary["skipped_images"]
    metrics["data"] = {
        "num_classes": data_summary["num_classes"],
        "splits": data_summary["splits"],
    }
    metrics["best_checkpoint"] = str(best) if best else None
    metrics["epochs_completed"] = trainer.current_epoch
    metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
    atomic_write_json(output_dir / METRICS_FILE, metrics)
    return metrics


def forward_loguru_to_logging() -> None:
    """Send loguru records through stdlib logging, so Hydra's handlers (console and
    the run folder's ``train.log``) receive the project's warnings too."""

    def sink(message: Any) -> None:
        record = message.record
        logging.getLogger(record["name"]).log(record["level"].no, record["message"])

    logger.remove()
    logger.add(sink, level="INFO", format="{message}")


@hydra.main(
    version_base="1.3", config_path="conf", config_name="train_jersey_ocr_resnet18"
)
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and report bad input as one clear line."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    forward_loguru_to_logging()
    try:
        metrics = train(cfg, output_dir)
    except (DataError, ConfigError, WeightsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print_summary(metrics, output_dir)
    return float(metrics.get("test", metrics["val"])["acc_top1"])


class _DropLightningTips(logging.Filter):
    """Drop Lightning's advertising tips (e.g. for its cloud logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def silence_known_noise() -> None:
    """Hide third-party messages that say nothing about the user's run."""
    # Lightning 2.6 calls a pytree API that torch 2.14 deprecates; harmless.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Hydra creates the run folder (and .hydra/) before the CSV logger starts, and
    # train() already refuses a folder that holds another run's checkpoints.
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        _DropLightningTips()
    )


def main() -> None:
    """Console-script entry point (``classifier-train``)."""
    torch.set_float32_matmul_precision("high")
    silence_known_noise()
    hydra_main()


if __name__ == "__main__":
    main()
