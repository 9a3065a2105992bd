"""Optimizer and schedule factories (the ``optimizer`` and ``scheduler`` groups).

Hydra instantiates both groups with ``_partial_: true``; the model completes them in
``configure_optimizers``, once the trainer knows how many steps the run has:

* an optimizer partial is called with the parameter groups
  (``torch.optim.AdamW``, ``torch.optim.SGD``, … as they are);
* a scheduler partial is called as ``scheduler(optimizer, total_steps=...,
  steps_per_epoch=...)`` and stepped once per optimizer step. The schedules below
  take their warm-up in epochs (fractions allowed) and turn it into steps.

The values (warm-up length, floors, factors) live in the YAML files only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

#: Warm-up starts at this fraction of the peak learning rate.
WARMUP_START_FACTOR = 0.01

OptimizerFactory = Callable[[Iterable[dict[str, Any]]], torch.optim.Optimizer]


class SchedulerFactory(Protocol):
    """A scheduler partial: completed with the optimizer and the run's length."""

    def __call__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        total_steps: int,
        steps_per_epoch: float,
    ) -> LRScheduler:
        """Build the schedule for a run of ``total_steps`` optimizer steps."""
        ...


def _warmup_steps(warmup_epochs: float, steps_per_epoch: float, total: int) -> int:
    if warmup_epochs < 0:
        raise ValueError(f"scheduler.warmup_epochs must be >= 0, got {warmup_epochs}")
    return max(0, min(round(warmup_epochs * steps_per_epoch), total - 1))


def _with_warmup(
    optimizer: torch.optim.Optimizer, warmup_steps: int, main: LRScheduler
) -> LRScheduler:
    """Linear warm-up from ``WARMUP_START_FACTOR`` of the peak, then ``main``."""
    if warmup_steps == 0:
        return main
    warmup = LinearLR(
        optimizer,
        start_factor=WARMUP_START_FACTOR,
        end_factor=1.0,
        total_iters=warmup_steps,
    )
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


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
    return _with_warmup(optimizer, warmup_steps, cosine)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: float,
    warmup_epochs: float,
    min_lr_ratio: float,
) -> LRScheduler:
    """``scheduler=warmup_cosine``: warm-up, then cosine to the floor at the end.

    Args:
        optimizer: The optimizer.
        total_steps: Optimizer steps in the planned run.
        steps_per_epoch: Optimizer steps per epoch.
        warmup_epochs: Length of the linear warm-up, in epochs.
        min_lr_ratio: Final learning rate as a fraction of the peak.

    Returns:
        The scheduler (stepped per optimizer step).
    """
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    return build_warmup_cosine(optimizer, total_steps, warmup, min_lr_ratio)


def step_decay(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: float,
    warmup_epochs: float,
    step_epochs: float,
    gamma: float,
) -> LRScheduler:
    """``scheduler=step``: warm-up, then the rate times ``gamma`` every ``step_epochs``.

    Args:
        optimizer: The optimizer.
        total_steps: Optimizer steps in the planned run.
        steps_per_epoch: Optimizer steps per epoch.
        warmup_epochs: Length of the linear warm-up, in epochs.
        step_epochs: Epochs between two decays.
        gamma: Multiplicative decay.

    Returns:
        The scheduler (stepped per optimizer step).
    """
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    step_size = max(1, round(step_epochs * steps_per_epoch))
    return _with_warmup(
        optimizer, warmup, StepLR(optimizer, step_size=step_size, gamma=gamma)
    )


def one_cycle(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: float,
    warmup_epochs: float,
    div_factor: float,
    final_div_factor: float,
) -> LRScheduler:
    """``scheduler=onecycle``: torch's one-cycle policy peaking at the optimizer's lr.

    Args:
        optimizer: The optimizer; its learning rate is the peak.
        total_steps: Optimizer steps in the planned run.
        steps_per_epoch: Optimizer steps per epoch.
        warmup_epochs: Rising phase, in epochs (torch's ``pct_start``).
        div_factor: Start rate = peak / ``div_factor``.
        final_div_factor: Final rate = start rate / ``final_div_factor``.

    Returns:
        The scheduler (stepped per optimizer step).
    """
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    return OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total_steps,
        pct_start=max(warmup, 1) / total_steps,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
