"""A callback the DDP tests add to ``classifier-train`` runs (``+callbacks.…``).

It records, in every rank, what that rank drew in each training epoch and the
EMA weights it ended with, into a folder outside the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from classifier_training.callbacks.ema import EMACallback
from classifier_training.data.datamodule import ImageFolderDataModule


class RecordRankDraws(Callback):
    """Write ``draws_rank<r>_epoch<e>.json`` and ``ema_rank<r>.pt`` into ``out``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        datamodule = trainer.datamodule
        assert isinstance(datamodule, ImageFolderDataModule)
        sampler = datamodule.draw_sampler
        self.out.mkdir(parents=True, exist_ok=True)
        record = {
            "world_size": trainer.world_size,
            "rank": trainer.global_rank,
            "epoch": trainer.current_epoch,
            "rank_indices": sampler.rank_indices,
            "epoch_indices": sampler.drawn_indices,
        }
        name = f"draws_rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        (self.out / name).write_text(json.dumps(record))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, EMACallback) and callback._average_model:
                state = callback._average_model.module.state_dict()
                torch.save(state, self.out / f"ema_rank{trainer.global_rank}.pt")
