"""``checkpoints/best.ckpt`` without what only resuming needs.

The best checkpoint serves inference, export, evaluation and fine-tuning
(``model.weights_path``): weights, EMA weights, the deployment contract and the
hyper-parameters. The optimizer's moments (twice the weights for AdamW) and the
schedulers' state serve only resuming, which ``last.ckpt`` is for.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

#: Checkpoint entries a slim checkpoint leaves out (Lightning's names).
RESUME_ONLY_KEYS = ("optimizer_states", "lr_schedulers")


class SlimModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose files leave out :data:`RESUME_ONLY_KEYS`.

    Args:
        *args: ``ModelCheckpoint`` arguments.
        slim: Leave the resume-only state out (``False``: a plain
            ``ModelCheckpoint``).
        **kwargs: ``ModelCheckpoint`` arguments.
    """

    def __init__(self, *args: Any, slim: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slim = slim
        self._writing = False

    @property
    def state_key(self) -> str:
        """``ModelCheckpoint``'s key, so a ``last.ckpt`` written before the slim
        callback (and after) resumes its best-score tracking."""
        key = super().state_key
        return key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # Lightning calls every callback's on_save_checkpoint while building
        # the file's contents: this flag tells ours the file is this one's.
        self._writing = True
        try:
            super()._save_checkpoint(trainer, filepath)
        finally:
            self._writing = False

    def on_save_checkpoint(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        checkpoint: dict[str, Any],
    ) -> None:
        """Drop the resume-only entries from this callback's own files."""
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self.slim and self._writing:
            for key in RESUME_ONLY_KEYS:
                checkpoint.pop(key, None)
