"""Exponential moving average (EMA) of the weights, built on Lightning's
``WeightAveraging``.

Lightning's callback already does the hard parts: it keeps a
``torch.optim.swa_utils.AveragedModel``, swaps the averaged weights in for every
validation epoch, writes them to ``checkpoint["state_dict"]`` (the raw weights go
to ``checkpoint["current_model_state"]``, the average's step count ``n_averaged`` to
``checkpoint["averaging_state"]``) and restores all of it on resume. This module
adds a decay with warm-up, so short runs benefit too, and keeps the average on the
model's device.

Outside ``fit`` (``trainer.validate/test/predict``, e.g. of ``best.ckpt`` right
after training) the callback stands aside: the model holds the checkpoint's
``state_dict``, which are the EMA weights. Lightning's base class would instead
load the raw weights into the model for any stage and swap the average in for
validation only, so ``test`` would score weights that were never exported.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import STEP_OUTPUT
from loguru import logger
from torch import Tensor

DEFAULT_DECAY = 0.9999


class WarmupEMA:
    """EMA update with a warm-up of the decay (a ``multi_avg_fn`` for
    ``AveragedModel``).

    After ``n`` updates of the average (``n_averaged``; the first update copies the
    weights), the next update is::

        d = min(decay, (1 + n) / (10 + n))        # warm-up (``warmup=True``)
        ema = d * ema + (1 - d) * weights

    so the effective decay is 0.18 at the 2nd update, 0.92 after 100, 0.991 after
    1,000 and reaches 0.9999 only after ~90,000 updates: a run of a few hundred
    steps averages roughly its last ``n / 10`` steps instead of staying near the
    initial weights. Integer buffers (BatchNorm's ``num_batches_tracked``) are
    counters, not weights: they take the model's current value.

    Args:
        decay: The decay the warm-up converges to (in ``[0, 1)``).
        warmup: Use the warm-up; ``False`` applies ``decay`` from the first step.
    """

    def __init__(self, decay: float = DEFAULT_DECAY, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup

    def decay_at(self, num_averaged: int) -> float:
        """The decay used by the update that follows ``num_averaged`` updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + num_averaged) / (10.0 + num_averaged))

    @torch.no_grad()
    def __call__(
        self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor
    ) -> None:
        """Update ``averaged`` in place (all tensors share one device and dtype)."""
        if not averaged:
            return
        if not (torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0])):
            for avg, cur in zip(averaged, current, strict=True):
                avg.copy_(cur)
            return
        decay = torch.full((), self.decay, device=num_averaged.device)
        if self.warmup:
            # Tensor maths: no host sync (``num_averaged`` lives on the GPU there).
            n = num_averaged.to(torch.float32)
            decay = torch.minimum(decay, (1.0 + n) / (10.0 + n))
        weight = (1.0 - decay).to(averaged[0].dtype)
        # A 0-dim tensor weight works at run time; the stub only lists scalars.
        torch._foreach_lerp_(averaged, current, weight)  # type: ignore[call-overload]


class EMACallback(WeightAveraging):
    """EMA of all weights and buffers, used for validation, test and checkpoints.

    - Updated after every ``update_every_n_steps``-th optimizer step with
      :class:`WarmupEMA` (default decay 0.9999 with warm-up).
    - Validation and test run on the EMA weights; the checkpoint's ``state_dict``
      holds them, so ``best.ckpt`` is exactly the model that was scored (and what
      the ONNX export ships). Raw weights are kept in ``current_model_state``.
    - Resuming (``ckpt_path=.../last.ckpt``) restores the average and its update
      count ``n_averaged``: the average continues, it does not restart.
    - At the end of training the model is left holding the EMA weights.
    - Under DDP the average stays one model: the weights it averages are the
      same on every rank (DDP all-reduces the gradients), and after each update
      the averaged buffers (BatchNorm statistics, which each rank updates from its
      own batches) are broadcast from rank 0, as DDP does for the model's own
      buffers.

    Args:
        decay: Target decay (see :class:`WarmupEMA`).
        warmup: Ramp the decay up as ``(1 + n) / (10 + n)``.
        update_every_n_steps: Update the average every N optimizer steps.
        device: Where the average lives (default: the model's device).
        use_buffers: Average buffers (BatchNorm statistics) too.
    """

    def __init__(
        self,
        decay: float = DEFAULT_DECAY,
        warmup: bool = True,
        update_every_n_steps: int = 1,
        device: str | None = None,
        use_buffers: bool = True,
    ) -> None:
        if update_every_n_steps < 1:
            raise ValueError(
                f"ema update_every_n_steps must be >= 1, got {update_every_n_steps}"
            )
        self.ema_fn = WarmupEMA(decay, warmup)
        self.update_every_n_steps = update_every_n_steps
        self._pinned_device = device is not None
        super().__init__(
            device=device, use_buffers=use_buffers, multi_avg_fn=self.ema_fn
        )

    def should_update(
        self, step_idx: int | None = None, epoch_idx: int | None = None
    ) -> bool:
        """Update after every ``update_every_n_steps``-th optimizer step only."""
        return step_idx is not None and (step_idx + 1) % self.update_every_n_steps == 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Move the average to the model's device.

        ``setup`` builds it before the strategy moves the model to the GPU; left on
        the CPU it would cost a device-to-host copy of all weights every step.
        """
        if self._average_model is not None and not self._pinned_device:
            self._average_model.to(pl_module.device)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Update the average; under DDP, give every rank rank 0's buffers."""
        before = self._latest_update_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._latest_update_step != before and trainer.world_size > 1:
            self._broadcast_buffers(pl_module.device)

    def _broadcast_buffers(self, device: torch.device) -> None:
        if self._average_model is None or not torch.distributed.is_initialized():
            return
        for buffer in self._average_model.module.buffers():
            # NCCL broadcasts device tensors only: go through the model's device.
            shared = buffer.to(device)
            torch.distributed.broadcast(shared, src=0)
            if shared is not buffer:
                buffer.copy_(shared)

    def on_load_checkpoint(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        checkpoint: dict[str, Any],
    ) -> None:
        """Restore the average and the raw weights when resuming a fit only."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_validation_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Swap the average in for validation during fit."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Swap the raw weights back after validation during fit."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)

    @property
    def num_updates(self) -> int:
        """How many times the average was updated (``n_averaged``; 0 before fit)."""
        if self._average_model is None:
            return 0
        n_averaged = self._average_model.n_averaged
        assert isinstance(n_averaged, Tensor)
        return int(n_averaged.item())

    @property
    def current_decay(self) -> float:
        """The decay the next update will use."""
        return self.ema_fn.decay_at(self.num_updates)

    def state_dict(self) -> dict[str, Any]:
        """Callback state saved in checkpoints (the average itself is saved by
        ``on_save_checkpoint`` under ``state_dict``/``averaging_state``)."""
        state = super().state_dict()
        state["decay"] = self.ema_fn.decay
        state["warmup"] = self.ema_fn.warmup
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the callback state; say so when a resume changes the EMA recipe."""
        super().load_state_dict(state_dict)
        saved = (state_dict.get("decay"), state_dict.get("warmup"))
        current = (self.ema_fn.decay, self.ema_fn.warmup)
        if saved != (None, None) and saved != current:
            logger.warning(
                f"resuming an EMA saved with decay={saved[0]}, warmup={saved[1]} "
                f"using decay={current[0]}, warmup={current[1]}; the average "
                "continues with the new settings"
            )
