"""Training entry point: ``classifier-train`` / ``python -m classifier_training.train``.

Composes the Hydra config, validates the data, builds data module, model,
callbacks, loggers and trainer; fits; evaluates the best checkpoint on valid and
test; writes ``metrics.json`` and prints a summary. Errors of the user's input
(:class:`~classifier_training.core.errors.ClassifierError`) end in one line and
exit 2; anything else is a bug and keeps its traceback. Ctrl-C ends with the
command that resumes the run.
"""

from __future__ import annotations

import csv
import logging
import shlex
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from loguru import logger
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

import classifier_training.models  # noqa: F401  (registers the model options)
from classifier_training.calibration import calibrate_run
from classifier_training.config import (
    ConfigError,
    DataModuleConfig,
    TransformsConfig,
    load_data_config,
)
from classifier_training.core.errors import USER_ERROR_EXIT_CODE, ClassifierError
from classifier_training.core.io import atomic_path, atomic_write_json
from classifier_training.core.run_files import METRICS_CSV_FILE, METRICS_FILE
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.factory import default_normalization, network_name
from classifier_training.report import build_run_report
from classifier_training.utils.hydra import register_settings
from classifier_training.utils.loggers import (
    finish_trackers,
    log_config,
    log_deployment,
    log_final_metrics,
)


def register_configs() -> None:
    """Store the code's defaults as the config nodes the YAML files start from.

    ``data/base`` holds every ``DataModuleConfig`` default (``mean``/``std`` null:
    the model's own, see :func:`resolve_data_values`); ``transforms/digits``
    holds the ``TransformsConfig`` defaults, placed at ``data.transforms``. The
    model options register themselves when :mod:`classifier_training.models` is
    imported.
    """
    register_settings(
        "data", "base", DataModuleConfig, exclude={"transforms"}, mean=None, std=None
    )
    register_settings(
        "transforms", "digits", TransformsConfig, package="data.transforms"
    )


register_configs()


def resolve_data_values(cfg: DictConfig) -> dict[str, Any]:
    """``cfg.data`` as plain values, with the model's normalisation where unset.

    Args:
        cfg: The composed config.

    Returns:
        The ``data`` mapping, ready for :func:`load_data_config`.
    """
    values = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(values, dict)
    data = {str(k): v for k, v in values.items()}
    if data.get("mean") is None or data.get("std") is None:
        arch = cfg.model.get("arch")  # None: the model builds its own network
        mean, std = default_normalization(None if arch is None else str(arch))
        if data.get("mean") is None:
            data["mean"] = mean
        if data.get("std") is None:
            data["std"] = std
    return data


def build_datamodule(
    cfg: DictConfig, processes_per_machine: int = 1
) -> ImageFolderDataModule:
    """Validate ``cfg.data`` and set the data module up.

    Args:
        cfg: The composed config.
        processes_per_machine: DDP ranks per machine (they share the image cache).
    """
    datamodule = ImageFolderDataModule(
        load_data_config(resolve_data_values(cfg)),
        arch=network_name(cfg.model),
        seed=int(cfg.get("seed") or 0),
        processes_per_machine=processes_per_machine,
        accelerator=str(cfg.trainer.get("accelerator", "auto")),
    )
    datamodule.setup("fit")
    return datamodule


def build_model(
    cfg: DictConfig, datamodule: ImageFolderDataModule
) -> BaseClassificationModel:
    """Instantiate ``cfg.model`` with class count, names and weights from the data,
    and the ``optimizer``/``scheduler`` groups as partials."""
    factories = {}
    for group in ("optimizer", "scheduler"):
        try:
            factories[group] = instantiate(cfg[group])
        except hydra.errors.InstantiationException as error:
            raise ConfigError(f"{group}: {error}") from None
    try:
        model = instantiate(
            cfg.model,
            _convert_="all",  # plain Python hparams: checkpoints load weights_only
            num_classes=datamodule.num_classes,
            class_names=datamodule.class_names,
            class_weights=datamodule.class_weights,
            **factories,
        )
    except hydra.errors.InstantiationException as error:
        if isinstance(error.__cause__, ClassifierError):
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


def build_callbacks(cfg: DictConfig, with_loggers: bool = True) -> list[Callback]:
    """Instantiate every enabled entry of ``cfg.callbacks`` (``null`` disables one).

    Args:
        cfg: The composed config.
        with_loggers: Whether the run has a logger; without one, callbacks that
            only write to loggers (the learning-rate monitor) are left out, with
            one line saying so.

    Returns:
        The callbacks, in config order.
    """
    callbacks: list[Callback] = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        try:
            callback = instantiate(node, _convert_="partial")
        except hydra.errors.InstantiationException as error:
            raise ConfigError(f"callbacks.{name}: {error}") from None
        if isinstance(callback, LearningRateMonitor) and not with_loggers:
            logger.info(
                f"callbacks.{name}: left out, the learning-rate monitor needs a "
                "logger (logging=none)"
            )
            continue
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


def continue_metrics_csv(output_dir: Path, ckpt_path: str | None) -> None:
    """Prepare ``metrics.csv`` so the CSV logger appends to the right history.

    A new run starts without one. A resumed run starts with the rows the
    interrupted run logged before its checkpoint (read from the checkpoint's run
    folder, ``<run>/checkpoints/<file>.ckpt``, which may be this folder); rows
    logged after it are dropped, since the resumed run logs those steps again.

    Args:
        output_dir: This run's folder (the CSV logger's).
        ckpt_path: The checkpoint the run resumes from, if any.
    """
    target = output_dir / METRICS_CSV_FILE
    if not is_rank_zero():  # the other ranks of a DDP run write no files
        return
    if ckpt_path is None:
        target.unlink(missing_ok=True)
        return
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path: {ckpt_path} does not exist")
    source = Path(ckpt_path).resolve().parent.parent / METRICS_CSV_FILE
    if not source.is_file():
        logger.info(f"resuming without earlier metrics: no {source}")
        return
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    resumed_at = int(checkpoint.get("global_step", 0))
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if int(float(r.get("step") or 0)) < resumed_at]
    with atomic_path(target) as tmp, tmp.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    logger.info(f"resuming at step {resumed_at}: {len(rows)} earlier metrics rows kept")


def resume_command(
    argv: Sequence[str], overrides: Sequence[str], last: Path | None
) -> str:
    """The command line that resumes this run from ``last``.

    Args:
        argv: ``sys.argv`` of this run (kept: the program and ``--config-name``).
        overrides: This run's Hydra overrides (``hydra.*`` ones included, so a
            chosen run folder is reused).
        last: The checkpoint to resume from (``None``: none was saved yet).

    Returns:
        ``classifier-train [--config-name X] <overrides> ckpt_path=<last>``.
    """
    head = ["classifier-train"]
    args = list(argv[1:])
    for flag in ("--config-name", "-cn", "--config-path", "-cp"):
        if flag in args and args.index(flag) + 1 < len(args):
            at = args.index(flag)
            head += args[at : at + 2]
    head += [a for a in args if a.startswith(("--config-name=", "--config-path="))]
    kept = [
        o
        for o in overrides
        if not o.lstrip("+~").startswith(("ckpt_path=", "hydra.mode="))
    ]
    resume = [f"ckpt_path={last}"] if last is not None else []
    return shlex.join([*head, *kept, *resume])


def last_checkpoint_path(callbacks: Sequence[Callback]) -> Path | None:
    """``last.ckpt`` of the checkpoint callback without a monitor, if one exists."""
    for callback in callbacks:
        if (
            isinstance(callback, ModelCheckpoint)
            and callback.monitor is None
            and callback.dirpath is not None
        ):
            path = Path(callback.dirpath) / f"{callback.filename or 'last'}.ckpt"
            if path.is_file():
                return path.resolve()
    return None


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (the only one that writes the run's
    files). Known before the trainer exists: Lightning reads it from the launcher's
    environment (``RANK``, ``LOCAL_RANK``/``NODE_RANK``, ``SLURM_PROCID``)."""
    return int(getattr(rank_zero_only, "rank", 0)) == 0


def processes_per_machine(trainer: L.Trainer) -> int:
    """Training processes on this machine: the devices of a multi-process run, else 1.

    Known before ``fit`` launches them (``trainer.devices`` per node).
    """
    if trainer.num_devices * trainer.num_nodes > 1:
        return int(trainer.num_devices)
    return 1


def effective_batch(trainer: L.Trainer, per_device: int) -> dict[str, int]:
    """How many images one optimizer step sees, and what it is made of.

    Args:
        trainer: The configured trainer (devices and nodes resolved).
        per_device: ``data.batch_size``, the batch of one process.

    Returns:
        ``{"per_device", "devices", "nodes", "accumulate_grad_batches",
        "effective"}``.
    """
    devices, nodes = int(trainer.num_devices), int(trainer.num_nodes)
    accumulate = int(trainer.accumulate_grad_batches)
    return {
        "per_device": per_device,
        "devices": devices,
        "nodes": nodes,
        "accumulate_grad_batches": accumulate,
        "effective": per_device * devices * nodes * accumulate,
    }


def add_calibration(
    metrics: dict[str, Any],
    model: BaseClassificationModel,
    datamodule: ImageFolderDataModule,
    best: str | None,
    output_dir: Path,
) -> None:
    """Fit the temperature of ``best`` (:func:`calibrate_run`) into ``metrics``.

    ``metrics["calibration"]`` gets the temperature and ECE/NLL/risk-coverage
    per split; each split's entry gets its per-class precision/recall/F1/support
    and most confident mistakes beside the accuracy.
    """
    calibration = calibrate_run(
        model.network, datamodule, Path(best) if best else None, output_dir
    )
    for split in ("val", "test"):
        if split in metrics and split in calibration:
            for key in ("per_class", "confident_mistakes"):
                metrics[split][key] = calibration[split].pop(key)
    metrics["calibration"] = calibration


def calibration_numbers(calibration: Mapping[str, Any]) -> dict[str, float]:
    """The calibration scalars for the trackers (``calibration/...``)."""
    numbers = {"calibration/temperature": float(calibration["temperature"])}
    for split in ("val", "test"):
        for key in ("ece_before", "ece_after"):
            if split in calibration:
                numbers[f"calibration/{split}_{key}"] = float(calibration[split][key])
    return numbers


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
    loggers = build_loggers(cfg)
    log_config(loggers, OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    callbacks = build_callbacks(cfg, with_loggers=bool(loggers))
    checkpoint = find_checkpoint_callback(callbacks)
    ckpt_path = cfg.get("ckpt_path")
    refuse_foreign_checkpoints(checkpoint, ckpt_path)
    # The trainer first: the data module needs to know how many processes of
    # this machine will share its image cache.
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    datamodule = build_datamodule(cfg, processes_per_machine(trainer))
    model = build_model(cfg, datamodule)
    continue_metrics_csv(output_dir, ckpt_path)
    batch = effective_batch(trainer, datamodule.config.batch_size)
    model.effective_batch_size = batch["effective"]
    if is_rank_zero():
        logger.info(
            f"effective batch {batch['effective']} = {batch['per_device']} per "
            f"device x {batch['devices']} device(s) x {batch['nodes']} node(s) x "
            f"{batch['accumulate_grad_batches']} accumulated"
        )
        if model.lr_scale() != 1.0:
            logger.info(
                f"model.scale_lr_with_batch: learning rate x {model.lr_scale():.4g} "
                f"(effective batch {batch['effective']} / reference "
                f"{model.hparams['lr_reference_batch']})"
            )

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted and is_rank_zero():  # stopped cleanly on Ctrl-C
            last = last_checkpoint_path(callbacks)
            given = HydraConfig.get().overrides
            overrides = [*given.task, *given.hydra]
            print(
                "interrupted; resume with:"
                if last
                else "interrupted before the first checkpoint; start again with:"
            )
            print(resume_command(sys.argv, overrides, last))
        raise
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
    if trainer.is_global_zero:  # one rank fits the temperature and writes files
        add_calibration(metrics, model, datamodule, best, output_dir)
    data_summary = datamodule.summary()
    metrics["excluded_rows"] = data_summary["excluded_rows"]
    metrics["skipped_images"] = data_summary["skipped_images"]
    metrics["data"] = {
        "num_classes": data_summary["num_classes"],
        "splits": data_summary["splits"],
    }
    metrics["batch"] = batch
    metrics["best_checkpoint"] = str(best) if best else None
    metrics["epochs_completed"] = trainer.current_epoch
    metrics["wall_time_s"] = round(time.perf_counter() - started, 2)
    if trainer.is_global_zero:
        atomic_write_json(output_dir / METRICS_FILE, metrics)
        build_run_report(output_dir)  # report.html: everything above on one page
        log_final_metrics(loggers, calibration_numbers(metrics["calibration"]))
        log_deployment(loggers, output_dir)
        finish_trackers(loggers)
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
    except ClassifierError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a failed job of a sweep: Hydra records it, the other jobs run
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    if is_rank_zero():
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
    # Under DDP the val/test numbers are computed by torchmetrics, which already
    # synchronises them across ranks: Lightning's advice to add sync_dist would
    # only average equal values again.
    warnings.filterwarnings(
        "ignore", message=r"It is recommended to use `self\.log\('(val|test)/"
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
