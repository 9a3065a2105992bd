"""Training entry point: ``classifier-train`` / ``python -m classifier_training.train``.

Composes the Hydra config, builds data module, model, callbacks, loggers and
trainer (:mod:`~classifier_training.training.builders`), fits, scores the best
checkpoint on val and test and calibrates it on those logits
(:mod:`~classifier_training.training.postfit`), then writes ``metrics.json`` and
prints a summary (:mod:`~classifier_training.training.results`). Errors of the
user's input (:class:`~classifier_training.core.errors.ClassifierError`) end in
one line and exit 2; anything else is a bug and keeps its traceback. Ctrl-C ends
with the command that resumes the run (:mod:`~classifier_training.training.resume`).
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from classifier_training.core.errors import USER_ERROR_EXIT_CODE, ClassifierError
from classifier_training.training.help import DEFAULT_RECIPE, help_text

# The builders stay importable from here, as before the split; they (and torch,
# Lightning) are imported on first use, so that ``--help`` prints at once.
_LAZY = {
    "build_callbacks": "classifier_training.training.builders",
    "build_datamodule": "classifier_training.training.builders",
    "build_loggers": "classifier_training.training.builders",
    "build_model": "classifier_training.training.builders",
    "effective_batch": "classifier_training.training.builders",
    "register_configs": "classifier_training.training.builders",
    "resolve_data_values": "classifier_training.training.builders",
    "silence_known_noise": "classifier_training.training.messages",
}

__all__ = [*sorted(_LAZY), "hydra_main", "main", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run one training job as configured and return what ``metrics.json`` holds.

    Args:
        cfg: The composed config.
        output_dir: The run folder.

    Returns:
        The final metrics.
    """
    import lightning as L

    from classifier_training.data.leakage_check import check_leakage
    from classifier_training.training.builders import (
        build_callbacks,
        build_datamodule,
        build_loggers,
        build_model,
        build_trainer,
        find_checkpoint_callback,
        precision_choice,
        processes_per_machine,
        set_effective_batch,
    )
    from classifier_training.training.deployment import (
        export_after_fit,
        prepare_export,
    )
    from classifier_training.training.postfit import (
        EvalLogits,
        evaluate_best,
        finalize_run,
    )
    from classifier_training.training.results import (
        add_post_fit,
        publish_results,
        run_facts,
    )
    from classifier_training.training.resume import (
        checked_ckpt_path,
        continue_metrics_csv,
        refuse_foreign_checkpoints,
        resume_hint_on_interrupt,
    )
    from classifier_training.training.run_folder import point_latest_at
    from classifier_training.utils.loggers import log_config

    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = checked_ckpt_path(cfg.get("ckpt_path"))
    loggers = build_loggers(cfg)
    log_config(loggers, OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    callbacks = build_callbacks(cfg, with_loggers=bool(loggers))
    checkpoint = find_checkpoint_callback(callbacks)
    refuse_foreign_checkpoints(checkpoint, ckpt_path)
    continue_metrics_csv(loggers, ckpt_path)  # before anything starts the CSV writer
    eval_logits = EvalLogits()
    # The trainer first: the data module needs to know how many processes of
    # this machine will share its image cache.
    trainer = build_trainer(cfg, [*callbacks, eval_logits], loggers)
    datamodule = build_datamodule(cfg, processes_per_machine(trainer))
    # One rank counts near-duplicates and group leaks across the splits (warns).
    leakage = (
        check_leakage(datamodule.config, datamodule.split_samples)
        if trainer.is_global_zero
        else None
    )
    model = build_model(cfg, datamodule)
    batch = set_effective_batch(model, trainer, datamodule.config.batch_size)
    export = prepare_export(cfg, output_dir, Path(datamodule.config.data_root))
    if trainer.is_global_zero:
        point_latest_at(output_dir, cfg.get("paths", {}).get("latest"))
    with resume_hint_on_interrupt(trainer, callbacks):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    best = checkpoint.best_model_path or None
    metrics = evaluate_best(trainer, model, datamodule, best)
    if trainer.is_global_zero:  # one rank fits the temperature and writes files
        post_fit = finalize_run(
            eval_logits.splits, datamodule, Path(best) if best else None, output_dir
        )
        add_post_fit(metrics, post_fit)
        metrics["export"] = export_after_fit(export, Path(best) if best else None)
    metrics.update(run_facts(trainer, datamodule, batch, best, started))
    metrics["data"]["leakage"] = leakage
    metrics["training_precision"] = {
        **precision_choice(cfg).to_json(),
        "channels_last": model.use_channels_last,
    }
    if trainer.is_global_zero:
        publish_results(metrics, output_dir, loggers)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name=DEFAULT_RECIPE)
def hydra_main(cfg: DictConfig) -> float | None:
    """The Hydra task: train, and report bad input as one clear line.

    Returns:
        The val top-1 of the best checkpoint: what a Hydra sweeper optimises
        (test is kept for the final report, never for choosing).
    """
    from classifier_training.training.builders import is_rank_zero
    from classifier_training.training.messages import forward_loguru_to_logging
    from classifier_training.training.results import print_summary
    from classifier_training.training.run_folder import discard_unstarted_run

    output_dir = Path(HydraConfig.get().runtime.output_dir)
    forward_loguru_to_logging()
    try:
        metrics = train(cfg, output_dir)
    except ClassifierError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # a failed job of a sweep: Hydra records it, the other jobs run
        if is_rank_zero():
            discard_unstarted_run(output_dir)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    if is_rank_zero():
        print_summary(metrics, output_dir)
    return float(metrics["val"]["acc_top1"])


def main() -> None:
    """Console-script entry point (``classifier-train``).

    ``--help`` prints the project's help before anything heavy is imported
    (Hydra's stays at ``--hydra-help``); override keys are checked before Hydra
    makes the run folder.
    """
    if {"--help", "-h"} & set(sys.argv[1:]):
        print(help_text(), end="")
        return
    import torch

    from classifier_training.training.builders import register_configs
    from classifier_training.training.messages import silence_known_noise
    from classifier_training.training.overrides import check_command_line

    torch.set_float32_matmul_precision("high")
    silence_known_noise()
    register_configs()
    try:
        check_command_line(sys.argv[1:], DEFAULT_RECIPE)
    except ClassifierError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    hydra_main()


if __name__ == "__main__":
    main()
