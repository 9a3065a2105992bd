"""Report the monitored metric to an Optuna trial each epoch; stop the run when the
study's pruner says the trial is clearly worse than the others.

``classifier-tune`` runs each trial as its own ``classifier-train`` process and
adds this callback with overrides (the study's storage, name and the trial's
number). Written here rather than taken from ``optuna-integration``: its
Lightning callback raises ``TrialPruned`` inside ``fit``, which would end the
run before the best checkpoint is evaluated; this one stops training the way
early stopping does, so a pruned trial still leaves a complete run folder
(``metrics.json``, report) and marks itself pruned in the study
(:data:`PRUNED_ATTR`), which ``classifier-tune`` reads when the process ends.
Under DDP, rank 0 talks to the study and broadcasts the decision.
"""

from __future__ import annotations

import lightning as L
import optuna
from lightning.pytorch.callbacks import Callback
from loguru import logger

from classifier_training.callbacks._common import is_fitting
from classifier_training.config import ConfigError

#: The trial's user attribute that records the epoch at which it was pruned.
PRUNED_ATTR = "pruned_at_epoch"
#: The study's user attribute that holds the pruner's settings (:func:`build_pruner`).
PRUNER_ATTR = "pruner"
PRUNERS = ("median", "hyperband", "none")


def build_pruner(
    name: str, startup_trials: int = 3, warmup_epochs: int = 2
) -> optuna.pruners.BasePruner:
    """The study's pruner; the tuner and each trial's process build the same one.

    Args:
        name: ``median`` (stop a trial whose value at an epoch is worse than the
            median of earlier trials at that epoch), ``hyperband`` (successive
            halving over epochs) or ``none``.
        startup_trials: ``median``: trials that always run to the end first.
        warmup_epochs: Epochs a trial always trains before it can be pruned
            (``hyperband``: its minimum resource).

    Returns:
        The pruner.

    Raises:
        ConfigError: If ``name`` is not one of :data:`PRUNERS`.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=startup_trials, n_warmup_steps=warmup_epochs
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_epochs))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner: {name!r} is not one of {', '.join(PRUNERS)}")


def open_trial(storage: str, study_name: str, trial_number: int) -> optuna.Trial:
    """A running trial of a stored study, from another process than the tuner's.

    Args:
        storage: The study's storage URL (``sqlite:///.../study.db``).
        study_name: The study's name.
        trial_number: The trial's number in the study.

    Returns:
        The trial (reports go to the storage; the study's pruner decides).
    """
    rdb = optuna.storages.RDBStorage(storage)
    study_id = rdb.get_study_id_from_name(study_name)
    settings = rdb.get_study_user_attrs(study_id).get(PRUNER_ATTR) or {"name": "none"}
    pruner = build_pruner(**settings)
    study = optuna.load_study(study_name=study_name, storage=rdb, pruner=pruner)
    trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, trial_number)
    # Optuna builds Trial objects itself inside study.optimize; the trial here
    # runs in a separate process, so it is attached to the stored one by id.
    return optuna.Trial(study, trial_id)


class OptunaPruningCallback(Callback):
    """Feed ``monitor`` to an Optuna trial after each validation; stop if pruned.

    Args:
        storage: The study's storage URL.
        study_name: The study's name.
        trial_number: This run's trial.
        monitor: The logged metric reported each epoch (the checkpoint's).
    """

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int | str,
        monitor: str = "val/acc_top1",
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.trial_number = int(trial_number)
        self.monitor = monitor
        self._trial: optuna.Trial | None = None
        self._told_missing = False

    def setup(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str
    ) -> None:
        """Attach to the trial (rank 0 only)."""
        if trainer.is_global_zero and self._trial is None:
            self._trial = open_trial(self.storage, self.study_name, self.trial_number)

    def on_validation_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Report this epoch's value; stop training when the pruner says so."""
        if not is_fitting(trainer):
            return
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                if not self._told_missing:
                    logger.warning(f"optuna pruning: {self.monitor} is not logged")
                    self._told_missing = True
            else:
                epoch = trainer.current_epoch
                self._trial.report(float(value), step=epoch)
                prune = self._trial.should_prune()
                if prune:
                    self._trial.set_user_attr(PRUNED_ATTR, epoch)
                    logger.info(
                        f"trial {self.trial_number} pruned after epoch {epoch}: "
                        f"{self.monitor} {float(value):.4f}"
                    )
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
