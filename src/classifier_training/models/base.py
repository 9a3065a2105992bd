"""``BaseClassificationModel``: the Lightning training logic shared by all models."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
)
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from classifier_training.core.readers import display_name
from classifier_training.types import ClassificationBatch

WARMUP_START_FACTOR = 0.01


def build_warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    min_lr_ratio: float,
) -> LRScheduler:
    """Linear warm-up, then cosine decay that reaches its floor at ``total_steps``.

    Args:
        optimizer: The optimizer whose learning rates are scheduled.
        total_steps: Optimizer steps in the whole planned run.
        warmup_steps: Steps of linear warm-up (from 1% of the peak).
        min_lr_ratio: Final learning rate as a fraction of the peak.

    Returns:
        A scheduler to be stepped once per optimizer step.
    """
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    eta_min = min(base_lrs) * min_lr_ratio
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    cosine = CosineAnnealingLR(
        optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=eta_min
    )
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(
        optimizer,
        start_factor=WARMUP_START_FACTOR,
        end_factor=1.0,
        total_iters=warmup_steps,
    )
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


class BaseClassificationModel(L.LightningModule):
    """Image classifier training logic: loss, metrics, optimizer and schedule.

    Subclasses only build the network (:meth:`build_network`). ``num_classes``,
    ``class_names`` and ``class_weights`` come from the data module at run time.

    Args:
        num_classes: Number of output classes.
        class_names: Names in class-index order (for per-class metric names).
        class_weights: Per-class loss weights (used when ``class_weighted_loss``).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay (not applied to norms and biases).
        warmup_epochs: Length of the linear warm-up, in epochs (may be fractional).
        min_lr_ratio: Final learning rate as a fraction of the peak.
        label_smoothing: Label smoothing of the training loss.
        class_weighted_loss: Weight the training loss by inverse class frequency.
        pretrained: Start from torchvision's ImageNet weights.
        weights_path: Start from a local weights file instead (takes precedence).
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.1,
        class_weighted_loss: bool = False,
        pretrained: bool = True,
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        names = (
            list(class_names)
            if class_names is not None
            else [str(i) for i in range(num_classes)]
        )
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class_names for {num_classes} classes")
        self.save_hyperparameters(ignore=["class_weights"])
        self.class_names = names
        weights = (
            torch.ones(num_classes)
            if class_weights is None
            else torch.as_tensor(class_weights, dtype=torch.float32)
        )
        self.register_buffer("class_weights", weights.clone())
        self.network = self.build_network(
            num_classes, pretrained=pretrained, weights_path=weights_path
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
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        # Confusion matrix of the last finished validation/test epoch (rows: true).
        self.last_confusion: dict[str, torch.Tensor] = {}

    @abstractmethod
    def build_network(
        self, num_classes: int, pretrained: bool, weights_path: str | None
    ) -> nn.Module:
        """Return the network mapping ``N x 3 x H x W`` images to ``N x C`` logits."""

    @property
    def loss_weights(self) -> torch.Tensor:
        """Per-class weights of the training loss (inverse train frequency)."""
        weights = self.class_weights
        assert isinstance(weights, torch.Tensor)
        return weights

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        logits: torch.Tensor = self.network(images)
        return logits

    # -- training ----------------------------------------------------------------
    def training_step(self, batch: ClassificationBatch, batch_idx: int) -> torch.Tensor:
        """Smoothed (optionally class-weighted) cross-entropy on one batch."""
        logits = self(batch["images"])
        weight = self.loss_weights if self.hparams["class_weighted_loss"] else None
        loss = F.cross_entropy(
            logits,
            batch["labels"],
            weight=weight,
            label_smoothing=self.hparams["label_smoothing"],
        )
        self.train_loss(loss.detach(), weight=batch["labels"].numel())
        self.train_acc(logits.detach(), batch["labels"])
        self.train_acc_top5(logits.detach(), batch["labels"])
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
        getattr(self, f"{stage}_confusion").update(logits, labels)
        probs = logits.float().softmax(dim=1)
        confidence, preds = probs.max(dim=1)
        return {
            "preds": preds,
            "confidence": confidence,
            "labels": labels,
            "probs": probs,
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
        confusion: torch.Tensor = getattr(self, f"{stage}_confusion").compute()
        getattr(self, f"{stage}_confusion").reset()
        self.last_confusion[stage] = confusion.cpu()
        support = confusion.sum(dim=1)
        correct = confusion.diagonal()
        per_class = {
            f"{stage}/acc_class/{display_name(name)}": correct[i].float() / support[i]
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
        """AdamW groups: no weight decay on biases and normalisation weights."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for param in self.network.parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 else decay).append(param)
        return [
            {"params": decay, "weight_decay": self.hparams["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def configure_optimizers(self) -> Any:
        """AdamW with linear warm-up then cosine decay to the end of the planned run."""
        optimizer = torch.optim.AdamW(
            self.parameter_groups(), lr=self.hparams["learning_rate"]
        )
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            raise ValueError(
                "the learning-rate schedule needs a finite run: set trainer.max_epochs "
                "or trainer.max_steps"
            )
        total_steps = int(total)
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            steps_per_epoch = total_steps / max_epochs
        else:  # max_steps-driven run: count warm-up in train-loader batches
            steps_per_epoch = float(self.trainer.num_training_batches)
        warmup_steps = round(self.hparams["warmup_epochs"] * steps_per_epoch)
        scheduler = build_warmup_cosine(
            optimizer, total_steps, warmup_steps, self.hparams["min_lr_ratio"]
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
