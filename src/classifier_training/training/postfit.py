"""After ``fit``: score the best weights, calibrate them, write the deployment files.

:func:`evaluate_best` runs ``trainer.validate`` and ``trainer.test`` on the best
checkpoint; :class:`EvalLogits` keeps the logits of those two passes, gathered
from every rank in file order. :func:`finalize_run` (rank 0) reuses them, so no
split is run a second time: it fits the temperature on validation
(:func:`~classifier_training.core.calibration.fit_temperature`) and records it
where a deployment reads it, ``labels_mapping.json`` and the contract inside
``best.ckpt``; it draws ``reliability_diagram.png`` and
``eval/mistakes_<split>.png`` and returns ECE/NLL before and after, the
risk-coverage table, per-class precision/recall/F1/support and the most
confident mistakes per split for ``metrics.json``. The ONNX graph keeps raw
logits: the temperature lives in the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import STEP_OUTPUT
from loguru import logger
from torch.utils.data import DataLoader

from classifier_training.checkpoints import read_checkpoint
from classifier_training.core.calibration import (
    calibration_summary,
    degenerate_calibration,
    fit_temperature,
    reliability,
    softmax,
)
from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    DeploymentContract,
    write_labels_mapping,
)
from classifier_training.core.io import atomic_path
from classifier_training.core.long_tail import (
    per_class_top1,
    rare_classes,
    top1_rare,
)
from classifier_training.core.metrics import confusion_counts, per_class_scores
from classifier_training.core.readers import ExcludedRows, display_name
from classifier_training.core.run_files import (
    ACCURACY_BY_COUNT_FILE,
    EVAL_DIR,
    LABELS_MAPPING_FILE,
    MISTAKES_FILE,
    RELIABILITY_FILE,
    eval_file,
)
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.inference.evaluation import Evaluation, plot_mistakes
from classifier_training.plots import save_figure
from classifier_training.plots.calibration import plot_reliability
from classifier_training.plots.long_tail import plot_accuracy_by_train_count
from classifier_training.training.results import EVAL_SPLITS, split_metrics
from classifier_training.types import TrainingData

#: Logits (``N x C``, float32) and targets (``N``) of one split, in file order.
SplitLogits = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


#: One rank's share of a split: row indices, logits and targets, in its order.
Share = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]


def in_file_order(shares: list[Share], rows: int) -> SplitLogits:
    """Put the ranks' shares of a split together, row by row in file order.

    Args:
        shares: Each rank's share (any order; rank 0's first under DDP).
        rows: The split's row count.

    Returns:
        Logits and targets of every row, in file order.

    Raises:
        RuntimeError: When the shares do not hold each row exactly once.
    """
    indices = np.concatenate([share[0] for share in shares])
    logits = np.concatenate([share[1] for share in shares])
    targets = np.concatenate([share[2] for share in shares])
    order = np.argsort(indices, kind="stable")
    if not np.array_equal(indices[order], np.arange(rows)):
        distinct = len(np.unique(indices))
        raise RuntimeError(
            f"evaluation shares hold {len(indices)} rows ({distinct} distinct), "
            f"not each of {rows} once"
        )
    return logits[order], targets[order]


class EvalLogits(Callback):
    """Keeps the logits of ``trainer.validate`` and ``trainer.test``.

    The validation epochs inside ``fit`` are left alone. Each split's logits and
    targets are gathered from every rank (under DDP each takes a disjoint share
    of the rows) and put back in file order, by the row indices of the sampler
    of the loader evaluated.

    Attributes:
        splits: ``val`` and ``test`` (after their pass): :data:`SplitLogits`.
    """

    def __init__(self) -> None:
        self.splits: dict[str, SplitLogits] = {}
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def _keep(self, outputs: STEP_OUTPUT) -> None:
        assert isinstance(outputs, Mapping), "the eval step returns a mapping"
        self._logits.append(outputs["logits"].detach().float().cpu())
        self._targets.append(outputs["labels"].detach().cpu())

    def _gather(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loader: Any
    ) -> SplitLogits:
        if not isinstance(loader, DataLoader):
            raise TypeError(f"one evaluation loader expected, got {type(loader)}")
        width = int(pl_module.hparams["num_classes"])
        share: Share = (
            np.fromiter(iter(loader.sampler), dtype=np.int64),
            torch.cat(self._logits).numpy()
            if self._logits
            else np.zeros((0, width), np.float32),
            torch.cat(self._targets).numpy().astype(np.int64)
            if self._targets
            else np.zeros(0, np.int64),
        )
        self._logits, self._targets = [], []
        shares: list[Any] = [share]
        if trainer.world_size > 1:
            shares = [None] * trainer.world_size
            torch.distributed.all_gather_object(shares, share)
        return in_file_order(shares, len(loader.dataset))  # type: ignore[arg-type]

    def on_validation_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Start the pass empty."""
        self._logits, self._targets = [], []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's logits (``trainer.validate`` only)."""
        if trainer.state.fn == TrainerFn.VALIDATING:
            self._keep(outputs)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the batch's logits."""
        if trainer.state.fn == TrainerFn.TESTING:
            self._keep(outputs)

    def on_validation_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Gather the split (``trainer.validate`` only)."""
        if trainer.state.fn == TrainerFn.VALIDATING:
            loader = trainer.val_dataloaders
            self.splits["val"] = self._gather(trainer, pl_module, loader)

    def on_test_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Gather the split."""
        if trainer.state.fn == TrainerFn.TESTING:
            loader = trainer.test_dataloaders
            self.splits["test"] = self._gather(trainer, pl_module, loader)


def evaluate_best(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: ImageFolderDataModule,
    best: str | None,
) -> dict[str, Any]:
    """Score ``best`` on val and (when there is one) test, on every rank.

    Args:
        trainer: The trainer that fitted ``model`` (with :class:`EvalLogits`
            among its callbacks when the logits are wanted).
        model: The model.
        datamodule: The run's data module.
        best: The best checkpoint (``None``: the model's current weights).

    Returns:
        ``{"val": ..., "test": ...}``: :func:`split_metrics` of each pass.
    """
    if best is None:
        logger.warning("no best checkpoint was saved; evaluating the final weights")
    metrics: dict[str, Any] = {}
    (val_results,) = trainer.validate(
        model, datamodule=datamodule, ckpt_path=best, verbose=False
    )
    metrics["val"] = split_metrics(val_results, "val")
    if datamodule.has_test:
        (test_results,) = trainer.test(
            model, datamodule=datamodule, ckpt_path=best, verbose=False
        )
        metrics["test"] = split_metrics(test_results, "test")
    return metrics


def per_class_table(
    logits: npt.NDArray[Any],
    targets: npt.NDArray[Any],
    class_names: list[str],
    train_counts: Sequence[int] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1, support (and train rows, when given) per class
    (display names, index order)."""
    matrix = confusion_counts(targets, logits.argmax(axis=1), len(class_names))
    scores = per_class_scores(matrix)
    return {
        display_name(name): {
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(scores["support"][i]),
            **({} if train_counts is None else {"train_count": int(train_counts[i])}),
        }
        for i, name in enumerate(class_names)
    }


def long_tail_view(
    splits: Mapping[str, SplitLogits], data: TrainingData, output_dir: Path
) -> dict[str, Any]:
    """Top-1 on the rarest third of the classes per split, and its figure.

    Returns:
        ``rare_classes`` (display names), ``top1_rare`` per split and
        ``figure`` (``eval/accuracy_by_train_count.png``); empty without
        recorded train counts.
    """
    counts = data.contract.train_counts
    if counts is None:
        return {}
    names = [display_name(n) for n in data.contract.class_names]
    rare = rare_classes(counts)
    panels, result = {}, {}
    for split in EVAL_SPLITS:
        if split not in splits or len(splits[split][1]) == 0:
            continue
        logits, targets = splits[split]
        predicted = logits.argmax(axis=1)
        result[split] = top1_rare(predicted, targets, counts)
        panels[split] = per_class_top1(predicted, targets, len(names))
    path = f"{EVAL_DIR}/{ACCURACY_BY_COUNT_FILE}"
    (output_dir / EVAL_DIR).mkdir(parents=True, exist_ok=True)
    save_figure(
        plot_accuracy_by_train_count(panels, counts, names, rare.tolist()),
        output_dir / path,
    )
    return {
        "rare_classes": [names[i] for i in rare],
        "top1_rare": result,
        "figure": path,
    }


def store_temperature_in_checkpoint(path: Path, temperature: float) -> None:
    """Rewrite the contract inside a checkpoint with ``temperature`` (atomically).

    The checkpoint carries its deployment contract, so a copied ``best.ckpt``
    predicts with calibrated confidences alone.
    """
    checkpoint = dict(read_checkpoint(path))
    for key, value in checkpoint.items():
        if isinstance(value, Mapping) and CHECKPOINT_STATE_KEY in value:
            state = dict(value[CHECKPOINT_STATE_KEY])
            state["temperature"] = temperature
            state["format_version"] = DeploymentContract.model_fields[
                "format_version"
            ].default
            checkpoint[key] = {**value, CHECKPOINT_STATE_KEY: state}
            break
    else:
        logger.warning(f"{path}: no deployment contract to store the temperature in")
        return
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def write_mistakes(
    data: TrainingData,
    split: str,
    probs: npt.NDArray[Any],
    targets: npt.NDArray[Any],
    output_dir: Path,
    limit: int = 16,
) -> list[dict[str, Any]]:
    """Draw ``eval/mistakes_<split>.png`` and list the most confident mistakes."""
    samples = list(data.split_samples(split))
    if len(samples) != len(targets):  # rows replaced at load: no reliable pairing
        return []
    evaluation = Evaluation(
        class_names=list(data.contract.class_names),
        samples=samples,
        targets=targets,
        probs=probs,
        excluded=ExcludedRows(0, {}),
    )
    plot_mistakes(evaluation, limit, output_dir / eval_file(MISTAKES_FILE, split))
    return evaluation.confident_mistakes(limit)


def finalize_run(
    splits: Mapping[str, SplitLogits],
    data: TrainingData,
    best: Path | None,
    output_dir: Path,
) -> dict[str, Any]:
    """Fit the temperature on validation and record it with the run's deployment.

    Args:
        splits: Logits and targets of ``val`` (required) and ``test`` of the
            best weights (:attr:`EvalLogits.splits`).
        data: The run's data (classes, rows of each split).
        best: The best checkpoint, rewritten with the temperature (``None``:
            none is).
        output_dir: The run folder (``labels_mapping.json``, the figures).

    Returns:
        ``temperature``, ``fitted_on`` and per split (``val``, ``test``): rows,
        ECE and NLL before/after, the risk-coverage table and the per-class
        table and the most confident mistakes (``eval/mistakes_<split>.png``
        draws them); ``reliability_diagram`` (file name).
    """
    names = list(data.contract.class_names)
    temperature = fit_temperature(*splits["val"])
    result: dict[str, Any] = {"temperature": temperature, "fitted_on": "val"}
    degenerate = degenerate_calibration(*splits["val"], temperature)
    if degenerate is not None:
        logger.warning(
            f"calibration is degenerate: {degenerate}; the temperature is stored "
            "as 1.0 (confidences are the raw softmax)"
        )
        result.update(fitted_temperature=temperature, degenerate=degenerate)
        temperature = result["temperature"] = 1.0
    panels = {}
    for split in EVAL_SPLITS:
        if split not in splits or len(splits[split][1]) == 0:
            continue
        logits, targets = splits[split]
        result[split] = {
            **calibration_summary(logits, targets, temperature),
            "per_class": per_class_table(
                logits, targets, names, data.contract.train_counts
            ),
            "confident_mistakes": write_mistakes(
                data, split, softmax(logits, temperature), targets, output_dir
            ),
        }
        panels[split] = (
            reliability(softmax(logits), targets),
            reliability(softmax(logits, temperature), targets),
        )
    save_figure(plot_reliability(panels, temperature), output_dir / RELIABILITY_FILE)
    result["reliability_diagram"] = RELIABILITY_FILE
    result["long_tail"] = long_tail_view(splits, data, output_dir)
    contract = data.contract.model_copy(update={"temperature": temperature})
    write_labels_mapping(contract, output_dir / LABELS_MAPPING_FILE)
    if best is not None:
        store_temperature_in_checkpoint(best, temperature)
    val = result.get("val", {})
    logger.info(
        f"calibration: temperature {temperature:.3f} (fitted on validation); "
        f"val ECE {val.get('ece_before', 0):.3f} -> {val.get('ece_after', 0):.3f}"
    )
    return result
