"""Everything a run is made of, built from the composed Hydra config.

:func:`register_configs` stores the code's defaults as the config nodes the YAML
files start from; the ``build_*`` functions turn the composed config into the
data module, model, callbacks, loggers and trainer, turning a config mistake into
one :class:`~classifier_training.config.ConfigError` line.
"""

from __future__ import annotations

import importlib
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from loguru import logger
from omegaconf import DictConfig, OmegaConf

from classifier_training.config import (
    ConfigError,
    DataModuleConfig,
    TransformsConfig,
    load_data_config,
)
from classifier_training.core.errors import ClassifierError
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.factory import default_normalization, network_name
from classifier_training.training.deployment import ExportSettings
from classifier_training.training.messages import LogIntervalFromEpoch
from classifier_training.training.precision import (
    AUTO,
    PrecisionChoice,
    training_precision,
)
from classifier_training.utils.hydra import register_settings


def register_configs() -> None:
    """Store the code's defaults as the config nodes the YAML files start from.

    ``data/base`` holds every ``DataModuleConfig`` default (``mean``/``std`` null:
    the model's own, see :func:`resolve_data_values`); ``transforms/digits``
    holds the ``TransformsConfig`` defaults, placed at ``data.transforms``;
    ``export/default`` the ``ExportSettings`` ones (deployment precisions). The
    model options (``model/<name>``) are stored by their classes' ``@register``
    when :mod:`classifier_training.models` is loaded. Call it before composing a
    config (``classifier-train`` does); calling it again stores the same nodes.
    """
    importlib.import_module("classifier_training.models")
    register_settings(
        "data", "base", DataModuleConfig, exclude={"transforms"}, mean=None, std=None
    )
    register_settings(
        "transforms", "digits", TransformsConfig, package="data.transforms"
    )
    register_settings("export", "default", ExportSettings)


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
            class_counts=datamodule.train_class_counts,
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
    sampler = datamodule.config.sampler
    balanced_from_start = sampler.mode != "disabled" and not sampler.defer_epochs
    loss = model.hparams["loss"]
    corrections = [
        *(
            ["model.class_weighted_loss=true"]
            if model.hparams["class_weighted_loss"]
            else []
        ),
        *(
            [f"model.loss={loss}"]
            if loss in ("logit_adjusted", "balanced_softmax")
            else []
        ),
    ]
    if corrections and balanced_from_start:
        logger.warning(
            f"{' and '.join(corrections)} with data.sampler.mode={sampler.mode}: "
            "both correct for imbalance, together they over-correct; consider "
            "data.sampler.mode=disabled"
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


def build_trainer(
    cfg: DictConfig,
    callbacks: list[Callback],
    loggers: list[Logger],
    **overrides: Any,
) -> L.Trainer:
    """Instantiate ``cfg.trainer`` with the run's callbacks and loggers.

    ``trainer.precision=auto`` becomes this machine's choice
    (:func:`~classifier_training.training.precision.training_precision`), said
    once by rank 0. ``overrides`` are further ``Trainer`` arguments.
    """
    if "precision" not in overrides:
        choice = precision_choice(cfg)
        if choice.requested == AUTO and is_rank_zero():
            logger.info(choice.describe())
        overrides["precision"] = choice.precision
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, LogIntervalFromEpoch()],
        logger=loggers or False,
        **overrides,
    )
    return trainer


def precision_choice(cfg: DictConfig) -> PrecisionChoice:
    """``cfg.trainer.precision`` resolved for this machine (see :mod:`.precision`)."""
    return training_precision(
        str(cfg.trainer.get("precision", "32-true")),
        str(cfg.trainer.get("accelerator", "auto")),
    )


def find_checkpoint_callback(callbacks: list[Callback]) -> ModelCheckpoint:
    """The ``ModelCheckpoint`` that monitors a metric (it selects the best weights)."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor:
            return callback
    raise ConfigError("callbacks: a ModelCheckpoint with a `monitor` is required")


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


def set_effective_batch(
    model: BaseClassificationModel, trainer: L.Trainer, per_device: int
) -> dict[str, int]:
    """Tell the model its effective batch (for ``scale_lr_with_batch``); say it once.

    Returns:
        :func:`effective_batch` of the run.
    """
    batch = effective_batch(trainer, per_device)
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
    return batch
