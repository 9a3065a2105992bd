"""Train the fold models and collect their calibrated out-of-fold probabilities.

Each fold is one ``classifier-train`` run (its own process, a normal run folder
in ``OUT/folds/<k>/run``) with the audit's recipe and ``data.exclude_rows``
naming the rows the fold holds out: the one training loop, its data pipeline,
checkpoint selection and temperature fit, unchanged. The image cache holds
every train row, so the first fold builds it and the others reuse it. The fold's
best checkpoint then predicts the held-out rows (and the rows of the other
audited splits) with its fitted temperature: the confidences a deployment of it
would give (:mod:`classifier_training.inference.checkpoint_classifier`).

A fold whose record (``fold.json``) matches what it would do now is not run
again: an interrupted audit, run again with the same command, resumes at the
first unfinished fold.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from classifier_training.audit.plan import AuditPlan, override_value
from classifier_training.core import run_files as rf
from classifier_training.core.errors import ClassifierError
from classifier_training.core.image_io import image_threads
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import Sample
from classifier_training.core.row_refs import row_ref, write_row_list
from classifier_training.inference.checkpoint_classifier import CheckpointClassifier
from classifier_training.report.run import read_json
from classifier_training.report.runs import child_error_line

#: Bumped when what a fold stores changes (older fold records are not reused).
FOLD_FORMAT = 1


class FoldFailedError(ClassifierError):
    """A fold's training stopped on bad input (its one-line error is kept)."""


class FoldCrashedError(RuntimeError):
    """A fold's training failed for another reason (a bug: see its log)."""


@dataclass(frozen=True)
class FoldResult:
    """What one fold produced.

    Attributes:
        fold: The fold index.
        held_out: Indices of the train rows it held out.
        probs: Per audited split, ``N x K`` calibrated probabilities in the
            plan's class order: ``train`` for the held-out rows (in
            ``held_out`` order), ``val``/``test`` for all of the split's rows.
            Rows whose image could not be read are NaN.
        record: ``fold.json``: run folder, temperature, val top-1, timing.
    """

    fold: int
    held_out: list[int]
    probs: dict[str, npt.NDArray[np.float64]]
    record: dict[str, Any]


def fold_fingerprint(plan: AuditPlan, fold: int) -> str:
    """What fold ``fold`` trains and predicts, as a digest (same digest: reuse)."""

    def rows(split: str) -> list[tuple[str, str]]:
        return [(row_ref(s, plan.data_root), s.label) for s in plan.rows[split]]

    facts = {
        "format": FOLD_FORMAT,
        "config_name": plan.config_name,
        "overrides": list(plan.overrides),
        "rows": {split: rows(split) for split in plan.rows},
        "held_out": plan.held_out(fold),
        "classes": plan.class_names,
    }
    encoded = json.dumps(facts, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def fold_command(plan: AuditPlan, fold: int) -> list[str]:
    """Fold ``fold``'s ``classifier-train`` command line."""
    fold_dir = plan.fold_dir(fold).resolve()
    return [
        sys.executable,
        "-m",
        "classifier_training.train",
        "--config-name",
        plan.config_name,
        *plan.overrides,
        f"data.exclude_rows={override_value(str(fold_dir / rf.HELD_OUT_FILE))}",
        f"hydra.run.dir={override_value(str(fold_dir / rf.FOLD_RUN_DIR))}",
    ]


def _train(command: list[str], log: Path) -> None:
    tail: deque[str] = deque(maxlen=200)
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        for line in process.stderr:  # shown as it comes, kept for the error
            sys.stderr.write(line)
            tail.append(line)
        code = process.wait()
    if code == 0:
        return
    message = child_error_line(tail, code)
    if code == 2:
        raise FoldFailedError(message)
    raise FoldCrashedError(f"{message} (log: {log})")


def predict_rows(
    classifier: CheckpointClassifier,
    samples: Sequence[Sample],
    class_names: Sequence[str],
    batch_size: int,
    progress: Progress,
    title: str,
) -> npt.NDArray[np.float64]:
    """Calibrated probabilities of ``samples`` in ``class_names`` order.

    A class the model does not know gets 0; a row whose image cannot be read
    gets NaN.
    """
    columns = [classifier.class_to_idx.get(name) for name in class_names]
    known = [i for i, c in enumerate(columns) if c is not None]
    source = [c for c in columns if c is not None]
    probs = np.zeros((len(samples), len(class_names)))
    task = progress.add_task(title, total=len(samples))

    def load(sample: Sample) -> npt.NDArray[Any] | None:
        try:
            return classifier.preprocessor(sample.image)
        except OSError:
            return None

    with ThreadPoolExecutor(image_threads()) as pool:
        for start in range(0, len(samples), batch_size):
            arrays = list(pool.map(load, samples[start : start + batch_size]))
            good = [i for i, a in enumerate(arrays) if a is not None]
            block = np.zeros((len(arrays), len(class_names)))
            if good:
                batch = np.stack([a for a in arrays if a is not None])
                predicted = classifier.predict_proba(batch)
                block[np.ix_(good, known)] = predicted[:, source]
            block[[i for i, a in enumerate(arrays) if a is None]] = np.nan
            probs[start : start + len(arrays)] = block
            progress.advance(task, len(arrays))
    return probs


def _load_result(plan: AuditPlan, fold: int, fingerprint: str) -> FoldResult | None:
    folder = plan.fold_dir(fold)
    record = read_json(folder / rf.FOLD_FILE)
    stored = folder / rf.FOLD_PREDICTIONS_FILE
    if record.get("fingerprint") != fingerprint or not stored.is_file():
        return None
    with np.load(stored) as arrays:
        probs = {split: np.asarray(arrays[split], np.float64) for split in plan.rows}
    return FoldResult(fold, plan.held_out(fold), probs, {**record, "reused": True})


def run_fold(plan: AuditPlan, fold: int, console: Console) -> FoldResult:
    """Train fold ``fold`` (unless its earlier result is still valid) and predict.

    Raises:
        FoldFailedError: If its training stops on bad input.
        FoldCrashedError: If its training fails otherwise.
    """
    fingerprint = fold_fingerprint(plan, fold)
    held_out = plan.held_out(fold)
    title = f"fold {fold + 1}/{plan.folds}"
    earlier = _load_result(plan, fold, fingerprint)
    if earlier is not None:
        console.print(f"{title}: finished earlier, reused ({plan.fold_dir(fold)})")
        return earlier
    folder = plan.fold_dir(fold)
    if folder.exists():  # an unfinished or outdated fold: start it afresh
        shutil.rmtree(folder)
    train = plan.rows["train"]
    write_row_list(
        folder / rf.HELD_OUT_FILE,
        (row_ref(train[i], plan.data_root) for i in held_out),
        header=f"label audit {title}: train rows held out (data.exclude_rows)",
    )
    console.rule(
        f"{title}: training on {len(train) - len(held_out):,} rows, "
        f"{len(held_out):,} held out"
    )
    started = time.perf_counter()
    run_dir = folder / rf.FOLD_RUN_DIR
    _train(fold_command(plan, fold), run_dir / rf.TRAIN_LOG_FILE)
    trained = time.perf_counter() - started
    metrics = read_json(run_dir / rf.METRICS_FILE)
    best = metrics.get("best_checkpoint")
    if not best:
        raise FoldCrashedError(f"{title}: no best checkpoint in {run_dir}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    classifier = CheckpointClassifier(best, device=device)
    probs: dict[str, npt.NDArray[np.float64]] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        for split, samples in plan.rows.items():
            chosen = [samples[i] for i in held_out] if split == "train" else samples
            what = "held-out train rows" if split == "train" else f"{split} rows"
            probs[split] = predict_rows(
                classifier,
                chosen,
                plan.class_names,
                plan.data.batch_size,
                progress,
                f"{title}: predicting {what}",
            )
    np.savez(folder / rf.FOLD_PREDICTIONS_FILE, **probs)
    record = {
        "fingerprint": fingerprint,
        "fold": fold,
        "held_out": len(held_out),
        "run_dir": str(run_dir),
        "best_checkpoint": str(best),
        "temperature": classifier.temperature,
        "val_acc_top1": (metrics.get("val") or {}).get("acc_top1"),
        "train_s": round(trained, 1),
        "predict_s": round(time.perf_counter() - started - trained, 1),
    }
    atomic_write_json(folder / rf.FOLD_FILE, record)
    return FoldResult(fold, held_out, probs, {**record, "reused": False})


def combine(
    plan: AuditPlan, results: Sequence[FoldResult]
) -> dict[str, npt.NDArray[np.float64]]:
    """Out-of-fold probabilities of the train rows; fold means for val/test."""
    combined: dict[str, npt.NDArray[np.float64]] = {}
    train = np.full((len(plan.rows["train"]), len(plan.class_names)), np.nan)
    for result in results:
        train[result.held_out] = result.probs["train"]
    combined["train"] = train
    for split in plan.rows:
        if split != "train":
            combined[split] = np.mean([r.probs[split] for r in results], axis=0)
    return combined
