"""``BaseClassificationModel``: the Lightning training logic shared by all models."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from classifier_training.config import ConfigError
from classifier_training.core.errors import root_cause_line
from classifier_training.core.readers import MIN_CLASSES, display_name
from classifier_training.models.mixing import BatchMixer, dominant_labels
from classifier_training.models.optim import OptimizerFactory, SchedulerFactory
from classifier_training.models.settings import ModelSettings
from classifier_training.models.track_metric import TrackTop1
from classifier_training.types import ClassificationBatch, GroupedData


class BaseClassificationModel(L.LightningModule, ABC):
    """Image classifier training logic: loss, metrics, optimizer and schedule.

    Abstract: a subclass builds the network (:meth:`build_network`). ``num_classes``,
    ``class_names`` and ``class_weights`` come from the data module at run time;
    ``optimizer`` and ``scheduler`` are the partials of the ``optimizer`` and
    ``scheduler`` config groups (see :mod:`classifier_training.models.optim`).
    Every other keyword is a setting (a ``model.*`` key), validated by the class's
    :attr:`settings_model` (:class:`~classifier_training.models.settings.ModelSettings`
    here; a subclass with settings of its own names a subclass of it) and kept in
    :attr:`settings`.

    Args:
        num_classes: Number of output classes.
        class_names: Names in class-index order (for per-class metric names).
        class_weights: Per-class loss weights (used when ``class_weighted_loss``).
        optimizer: Called with the parameter groups; returns the optimizer.
            Required to train, not to evaluate or export.
        scheduler: Called as ``scheduler(optimizer, total_steps=...,
            steps_per_epoch=...)``; stepped once per optimizer step. ``None``
            keeps the learning rate constant.
        **settings: The fields of :attr:`settings_model` (defaults where absent).

    Raises:
        ConfigError: On a setting that is unknown or out of range (one line per
            key, naming ``model.<key>``).
    """

    #: The settings this class takes (the keys of its ``model`` config node).
    settings_model: ClassVar[type[ModelSettings]] = ModelSettings

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        *,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.settings: ModelSettings = self.settings_model.from_keys(settings)
        if num_classes < MIN_CLASSES:
            raise ValueError(f"num_classes must be >= {MIN_CLASSES}, got {num_classes}")
        #: Images per optimizer step over all processes (set by the trainer's
        #: caller; needed by ``scale_lr_with_batch`` only).
        self.effective_batch_size: int | None = None
        names = (
            list(class_names)
            if class_names is not None
            else [str(i) for i in range(num_classes)]
        )
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class_names for {num_classes} classes")
        # Plain values only, so that checkpoints load weights_only; the partials
        # are not hyper-parameters (the run's .hydra/config.yaml records them).
        self.save_hyperparameters(
            {
                "num_classes": num_classes,
                "class_names": names,
                **self.settings.model_dump(),
            }
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = names
        weights = (
            torch.ones(num_classes)
            if class_weights is None
            else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights.clone())
        self.network = self.build_network(num_classes)
        self.use_channels_last = False  # decided in on_fit_start
        self._check_compiled_call = False
        self.mixer = BatchMixer(
            num_classes,
            self.settings.mixup_alpha,
            self.settings.cutmix_alpha,
            self.settings.mixup_prob,
        )

        top_k = min(5, num_classes)  # still logged as acc_top5 with fewer classes
        self.train_loss = MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.train_acc_top5 = MulticlassAccuracy(
            num_classes, top_k=top_k, average="micro"
        )
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        eval_metrics = MetricCollection(
            {
                "acc_top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                "acc_top5": MulticlassAccuracy(
                    num_classes, top_k=top_k, average="micro"
                ),
            }
        )
        self.val_metrics = eval_metrics.clone(prefix="val/")
        self.test_metrics = eval_metrics.clone(prefix="test/")
        self.val_class_acc = MulticlassAccuracy(num_classes, average=None)
        self.test_class_acc = MulticlassAccuracy(num_classes, average=None)
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        # One answer per track (val/track_top1), when the data has a group key.
        self.val_track, self.test_track = TrackTop1(names), TrackTop1(names)
        #: Whether validation and test log ``<stage>/track_top1``: set in
        #: :meth:`setup` from the data module's ``group_key``.
        self.track_metrics = False
        # Confusion matrix of the last finished validation/test epoch (rows: true).
        self.last_confusion: dict[str, torch.Tensor] = {}

    @abstractmethod
    def build_network(self, num_classes: int) -> nn.Module:
        """Return the network mapping ``N x 3 x H x W`` images to ``N x C`` logits."""

    @property
    def loss_weights(self) -> torch.Tensor:
        """Per-class weights of the training loss (inverse train frequency)."""
        weights = self.class_weights
        assert isinstance(weights, torch.Tensor)
        return weights

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        if self.use_channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self._check_compiled_call:
            return self._first_compiled_call(images)
        logits: torch.Tensor = self.network(images)
        return logits

    def _first_compiled_call(self, images: torch.Tensor) -> torch.Tensor:
        """The first call compiles: a failure becomes one line naming the key."""
        try:
            logits: torch.Tensor = self.network(images)
        except Exception as error:
            raise ConfigError(
                f"model.compile=true: torch.compile failed on the first batch "
                f"({root_cause_line(error)}); set model.compile=false"
            ) from None
        self._check_compiled_call = False
        return logits

    def on_fit_start(self) -> None:
        """Apply ``channels_last`` and ``compile`` on the device fitting runs on."""
        setting = self.settings.channels_last
        self.use_channels_last = (
            self.device.type == "cuda" if setting is None else bool(setting)
        )
        if self.use_channels_last:
            self.network.to(memory_format=torch.channels_last)
        if self.settings.compile and not self._check_compiled_call:
            # In place (nn.Module.compile): parameter names, checkpoints and
            # deep copies (EMA, ONNX export) stay those of the plain network.
            self.network.compile()
            self._check_compiled_call = True

    def setup(self, stage: str) -> None:
        """Turn the track metrics on when the data module has a group key."""
        datamodule = getattr(self._trainer, "datamodule", None)
        self.track_metrics = (
            isinstance(datamodule, GroupedData) and datamodule.group_key is not None
        )

    # -- training ----------------------------------------------------------------
    def mixing_active(self, epoch: int, max_epochs: int | None) -> bool:
        """Whether MixUp/CutMix applies in ``epoch`` (0-based) of ``max_epochs``."""
        if not self.mixer.enabled:
            return False
        if max_epochs is None or max_epochs < 0:
            return True
        return epoch < max_epochs - self.settings.mixup_off_last_epochs

    def mix_batch(
        self, images: torch.Tensor, labels: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training batch as the network sees it in ``epoch``.

        Args:
            images: Normalised ``N x 3 x H x W`` images.
            labels: ``N`` class indices.
            epoch: The (0-based) training epoch.

        Returns:
            The images (mixed when MixUp/CutMix is on in this epoch) and the soft
            ``N x C`` targets, or ``None`` for the hard ``labels``.
        """
        max_epochs = self._trainer.max_epochs if self._trainer is not None else None
        if not self.mixing_active(epoch, max_epochs):
            return images, None
        return self.mixer(images, labels)

    def training_step(self, batch: ClassificationBatch, batch_idx: int) -> torch.Tensor:
        """Smoothed (optionally class-weighted) cross-entropy on one batch.

        With MixUp/CutMix on, the loss is taken against the soft targets and the
        training accuracy against the dominant (largest-share) label of each.
        """
        labels = batch["labels"]
        images, soft = self.mix_batch(batch["images"], labels, self.current_epoch)
        targets = labels if soft is None else soft
        hard = labels if soft is None else dominant_labels(soft)
        logits = self(images)
        weight = self.loss_weights if self.settings.class_weighted_loss else None
        loss = F.cross_entropy(
            logits,
            targets,
            weight=weight,
            label_smoothing=self.settings.label_smoothing,
        )
        # update(), not a call: only epoch values are logged, and calling a
        # metric computes the batch's value as well, on every step.
        self.train_loss.update(loss.detach(), weight=labels.numel())
        self.train_acc.update(logits.detach(), hard)
        self.train_acc_top5.update(logits.detach(), hard)
        self.log(
            "train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True
        )
        self.log(
            "train/acc_top1",
            self.train_acc,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
        )
        self.log("train/acc_top5", self.train_acc_top5, on_step=False, on_epoch=True)
        return loss

    # -- evaluation --------------------------------------------------------------
    def _eval_step(
        self, batch: ClassificationBatch, stage: str
    ) -> dict[str, torch.Tensor]:
        logits = self(batch["images"])
        labels = batch["labels"]
        # Plain cross-entropy (no smoothing, no weights): comparable across recipes.
        loss = F.cross_entropy(logits, labels)
        getattr(self, f"{stage}_loss")(loss, weight=labels.numel())
        getattr(self, f"{stage}_metrics").update(logits, labels)
        getattr(self, f"{stage}_class_acc").update(logits, labels)
        getattr(self, f"{stage}_confusion").update(logits, labels)
        probs = logits.float().softmax(dim=1)
        if self.track_metrics and "groups" in batch:
            getattr(self, f"{stage}_track").update(
                probs, batch["groups"], batch["group_labels"]
            )
        confidence, preds = probs.max(dim=1)
        return {
            "preds": preds,
            "confidence": confidence,
            "labels": labels,
            "probs": probs,
            "logits": logits,
        }

    def validation_step(
        self, batch: ClassificationBatch, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Update validation metrics; return predictions for callbacks."""
        return self._eval_step(batch, "val")

    def test_step(
        self, batch: ClassificationBatch, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Update test metrics; return predictions for callbacks."""
        return self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        self.log(
            f"{stage}/loss", getattr(self, f"{stage}_loss"), prog_bar=stage == "val"
        )
        self.log_dict(
            getattr(self, f"{stage}_metrics").compute(), prog_bar=stage == "val"
        )
        getattr(self, f"{stage}_metrics").reset()
        if self.track_metrics:
            self.log(f"{stage}/track_top1", getattr(self, f"{stage}_track"))
        confusion: torch.Tensor = getattr(self, f"{stage}_confusion").compute()
        getattr(self, f"{stage}_confusion").reset()
        self.last_confusion[stage] = confusion.cpu()
        class_acc: MulticlassAccuracy = getattr(self, f"{stage}_class_acc")
        accuracy = class_acc.compute()
        # Classes absent from the split have no accuracy (torchmetrics says 0).
        # Support from the confusion matrix, which compute() synchronised across
        # ranks: every rank logs the same keys (its own tp/fn are its share only).
        support = confusion.sum(dim=1)
        class_acc.reset()
        per_class = {
            f"{stage}/acc_class/{display_name(name)}": accuracy[i]
            for i, name in enumerate(self.class_names)
            if support[i] > 0
        }
        self.log_dict(per_class)

    def on_validation_epoch_end(self) -> None:
        """Log epoch metrics, per-class accuracy; keep the confusion matrix."""
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        """Log epoch metrics, per-class accuracy; keep the confusion matrix."""
        self._eval_epoch_end("test")

    # -- optimisation ------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Two groups: the optimizer's weight decay, and none on biases and norms."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for param in self.network.parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 else decay).append(param)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def lr_scale(self) -> float:
        """Factor applied to the optimizer's learning rates (``scale_lr_with_batch``).

        Raises:
            ConfigError: When scaling is on but the effective batch is unknown.
        """
        if not self.settings.scale_lr_with_batch:
            return 1.0
        if self.effective_batch_size is None:
            raise ConfigError(
                "model.scale_lr_with_batch=true needs the effective batch size: "
                "set model.effective_batch_size before fitting"
            )
        return self.effective_batch_size / self.settings.lr_reference_batch

    def configure_optimizers(self) -> Any:
        """The configured optimizer, and its schedule stepped per optimizer step."""
        if self.optimizer_factory is None:
            raise ValueError(
                f"{type(self).__name__} was built without an optimizer: pass "
                "optimizer= (a partial of the optimizer config group) to train it"
            )
        optimizer = self.optimizer_factory(self.parameter_groups())
        scale = self.lr_scale()
        for group in optimizer.param_groups:  # before the schedule reads the lr
            group["lr"] = group["lr"] * scale
        if self.scheduler_factory is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            raise ConfigError(
                "the learning-rate schedule needs a finite run: set trainer.max_epochs "
                "or trainer.max_steps"
            )
        total_steps = int(total)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            steps_per_epoch = total_steps / max_epochs
        else:  # max_steps-driven run: count epochs in train-loader batches
            steps_per_epoch = float(self.trainer.num_training_batches)
        scheduler = self.scheduler_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
