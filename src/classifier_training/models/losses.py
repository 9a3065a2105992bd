"""Training losses for long-tailed classes (``model.loss``).

* ``cross_entropy``: plain (optionally class-weighted) cross-entropy.
* ``logit_adjusted``: cross-entropy on ``logits + tau * log(prior)`` (Menon et al.,
  "Long-tail learning via logit adjustment", ICLR 2021). The network learns
  balanced logits; at inference the raw logits are used as they are.
* ``balanced_softmax``: the softmax weighted by the class counts (Ren et al.,
  "Balanced Meta-Softmax", NeurIPS 2020): ``p_j ~ n_j exp(z_j)``, i.e. the logit
  adjustment with ``tau = 1``, whatever ``logit_adjust_tau`` says.
* ``ldam``: label-distribution-aware margins (Cao et al., NeurIPS 2019): the true
  class's logit is lowered by ``m_j ~ n_j^(-1/4)`` (the largest margin
  ``ldam_max_margin``) before a scaled cross-entropy.

Every loss takes hard class indices or soft ``N x C`` targets (MixUp/CutMix) and
label smoothing. The priors come from the train split's class counts, once, in
the data module (every rank reads the same train split, so they are identical on
every DDP rank); the model keeps the counts in its hyper-parameters, so they
travel with the checkpoint, and derives the buffers here from them.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

LossName = Literal["cross_entropy", "logit_adjusted", "balanced_softmax", "ldam"]
LOSS_NAMES: tuple[str, ...] = get_args(LossName)


def log_priors(class_counts: torch.Tensor) -> torch.Tensor:
    """``log(n_j / N)`` of the train split's class counts (all > 0)."""
    counts = class_counts.to(torch.float64)
    if (counts <= 0).any():
        raise ValueError("every class needs a train row to have a prior")
    return (counts / counts.sum()).log().to(torch.float32)


def ldam_margins(class_counts: torch.Tensor, max_margin: float) -> torch.Tensor:
    """Per-class margins ``n_j^(-1/4)``, scaled so the largest is ``max_margin``."""
    margins = class_counts.to(torch.float64).clamp(min=1) ** -0.25
    return (margins * (max_margin / margins.max())).to(torch.float32)


class ClassificationLoss(nn.Module):
    """The training loss chosen by ``model.loss``.

    Args:
        name: One of :data:`LOSS_NAMES`.
        class_counts: Train rows per class (needed by every loss but
            ``cross_entropy``).
        label_smoothing: Label smoothing, as in ``F.cross_entropy``.
        class_weights: Per-class weights of the loss, or ``None``.
        logit_adjust_tau: ``tau`` of ``logit_adjusted`` (``>= 0``).
        ldam_max_margin: The largest LDAM margin (the rarest class's).
        ldam_scale: Factor on the LDAM logits (the paper's 30 assumes a
            cosine-normalised head; this project's linear head uses 1).
    """

    log_prior: torch.Tensor
    margins: torch.Tensor

    def __init__(
        self,
        name: LossName = "cross_entropy",
        class_counts: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
        logit_adjust_tau: float = 1.0,
        ldam_max_margin: float = 0.5,
        ldam_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r}; choose one of {LOSS_NAMES}")
        if logit_adjust_tau < 0:
            raise ValueError(f"logit_adjust_tau must be >= 0, got {logit_adjust_tau}")
        if name != "cross_entropy" and class_counts is None:
            raise ValueError(f"loss {name!r} needs the train split's class counts")
        self.name = name
        self.label_smoothing = label_smoothing
        self.tau = 1.0 if name == "balanced_softmax" else logit_adjust_tau
        self.ldam_scale = ldam_scale
        counts = class_counts if class_counts is not None else torch.ones(1)
        prior = (
            log_priors(counts) if name != "cross_entropy" else torch.zeros(len(counts))
        )
        # Not in the state dict: derived from the counts the model's
        # hyper-parameters keep.
        self.register_buffer("log_prior", prior, persistent=False)
        self.register_buffer(
            "margins", ldam_margins(counts, ldam_max_margin), persistent=False
        )
        self.class_weights = class_weights

    def adjusted_logits(
        self, logits: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The logits the cross-entropy sees for this loss."""
        if self.name in ("logit_adjusted", "balanced_softmax"):
            return logits + self.tau * self.log_prior.to(logits.dtype)
        if self.name == "ldam":
            share = (
                F.one_hot(targets, logits.shape[1]).to(logits.dtype)
                if targets.ndim == 1
                else targets.to(logits.dtype)
            )
            return self.ldam_scale * (logits - share * self.margins.to(logits.dtype))
        return logits

    def forward(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        class_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean loss of a batch (hard ``N`` or soft ``N x C`` targets).

        ``class_weights`` replaces the constructor's for this batch (deferred
        re-weighting switches them on in the last epochs only).
        """
        chosen = self.class_weights if class_weights is None else class_weights
        weight = None if chosen is None else chosen.to(logits.device, logits.dtype)
        return F.cross_entropy(
            self.adjusted_logits(logits, targets),
            targets,
            weight=weight,
            label_smoothing=self.label_smoothing,
        )
