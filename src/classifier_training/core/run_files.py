"""The names of a run folder's files: the one place each is spelled.

A run folder (``outputs/YYYY-MM-DD/HH-MM-SS``, the seed's layout) is an interface:
downstream pipelines read ``model.onnx`` and ``labels_mapping.json``, the report
reads everything else. Writers and readers import the names from here::

    RUN/
    ├── .hydra/config.yaml, hydra.yaml   composed config, the command
    ├── checkpoints/best.ckpt, last.ckpt
    ├── model.onnx, labels_mapping.json  deployment
    ├── model.int8.onnx, model.fp16.onnx, export_summary.json
    │                                    ``classifier-export --precision``
    ├── metrics.json, metrics.csv        final and per-epoch metrics
    ├── report.html, train.log
    ├── dataset_stats.{json,png}, model_info.json, augmentation_preview.png,
    │   sampler_distribution.{json,png}, reliability_diagram.png
    ├── epoch_XXX/confusion_matrix.{png,json}, sample_predictions.png
    ├── eval/confusion_matrix_<split>.png, mistakes_<split>.png
    └── training_history/<metric>.png

An evaluation folder (``classifier-evaluate``) holds ``summary.json``,
``confusion_matrix.png``, ``mistakes.png`` and ``report.html``.

A label-audit folder (``classifier-audit-labels --out``)::

    AUDIT/
    ├── label_issues.jsonl, label_issues.html   flagged rows, the review page
    ├── summary.json                            counts, class pairs, folds
    ├── flagged_train_rows.txt                  a row list for data.exclude_rows
    ├── cache/                                  the folds' shared image cache
    └── folds/<k>/held_out_rows.txt, fold.json, predictions.npz, run/ (a run folder)

A sweep folder (``classifier-train -m``: Hydra's ``multirun/``, or a
``classifier-tune`` study) holds one run folder per job::

    SWEEP/
    ├── multirun.yaml                     Hydra's record of the sweep
    ├── study.db                          classifier-tune: the Optuna study
    ├── summary.csv, summary.html         one row per job, best first
    ├── summary_settings.csv              seeds repeated: mean and std per setting
    ├── compare.html                      classifier-report --compare SWEEP
    └── 0/, 1/, ...                       run folders (+ job_status.json when a
                                          job failed or was pruned)
"""

from __future__ import annotations

from pathlib import PurePosixPath

HYDRA_DIR = ".hydra"
CONFIG_FILE = f"{HYDRA_DIR}/config.yaml"
HYDRA_FILE = f"{HYDRA_DIR}/hydra.yaml"
#: The job's own overrides (``key=value`` lines), as Hydra records them.
OVERRIDES_FILE = f"{HYDRA_DIR}/overrides.yaml"
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT = "best.ckpt"
LAST_CHECKPOINT = "last.ckpt"
MODEL_ONNX = "model.onnx"
#: What ``classifier-export --precision`` writes: the fp32 model and its
#: reduced-precision copies, which share its ``labels_mapping.json``.
MODEL_PRECISIONS = ("fp32", "int8", "fp16")
LABELS_MAPPING_FILE = "labels_mapping.json"
METRICS_FILE = "metrics.json"
METRICS_CSV_FILE = "metrics.csv"
REPORT_FILE = "report.html"
TRAIN_LOG_FILE = "train.log"
DATASET_STATS_JSON = "dataset_stats.json"
DATASET_STATS_PNG = "dataset_stats.png"
MODEL_INFO_FILE = "model_info.json"
AUGMENTATION_PREVIEW_FILE = "augmentation_preview.png"
SAMPLER_JSON = "sampler_distribution.json"
SAMPLER_PNG = "sampler_distribution.png"
RELIABILITY_FILE = "reliability_diagram.png"
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_JSON = "confusion_matrix.json"
SAMPLE_PREDICTIONS_FILE = "sample_predictions.png"
MISTAKES_FILE = "mistakes.png"
#: ``classifier-evaluate --group-by``: a strip of frames per worst track.
WORST_TRACKS_FILE = "worst_tracks.png"
#: The evaluation of the best checkpoint at the end of training.
EVAL_DIR = "eval"
HISTORY_DIR = "training_history"
#: The curves drawn into ``training_history/`` (``<name>.png``).
HISTORY_PLOTS = ("loss", "accuracy", "learning_rate")
#: ``classifier-evaluate``'s summary (its folder's ``metrics.json``).
SUMMARY_FILE = "summary.json"
#: Hydra's record of a sweep, in the sweep folder.
MULTIRUN_FILE = "multirun.yaml"
#: A job that failed or was pruned: its status and the first line of its error.
JOB_STATUS_FILE = "job_status.json"
#: The sweep summary: one row per job (CSV) and the page (HTML).
SWEEP_CSV = "summary.csv"
SWEEP_HTML = "summary.html"
#: Jobs that differ only by ``seed``, grouped: mean and std per setting.
SWEEP_SETTINGS_CSV = "summary_settings.csv"
#: ``classifier-report --compare``'s page.
COMPARE_FILE = "compare.html"
#: ``classifier-tune``'s Optuna study (SQLite), in the study folder.
STUDY_DB = "study.db"
#: ``classifier-audit-labels``: the flagged rows, most suspicious first.
LABEL_ISSUES_FILE = "label_issues.jsonl"
#: ``classifier-audit-labels``: the review page.
LABEL_ISSUES_HTML = "label_issues.html"
#: ``classifier-audit-labels``: the flagged train rows, as a row list.
FLAGGED_ROWS_FILE = "flagged_train_rows.txt"
#: ``classifier-audit-labels``: one folder per fold (``folds/<k>``), holding
#: the rows it held out, its record, its predictions and its run folder.
FOLDS_DIR = "folds"
HELD_OUT_FILE = "held_out_rows.txt"
FOLD_FILE = "fold.json"
FOLD_PREDICTIONS_FILE = "predictions.npz"
FOLD_RUN_DIR = "run"
#: ``classifier-audit-labels``: the disk image cache the folds share.
AUDIT_CACHE_DIR = "cache"
#: ``classifier-export``'s record of each precision written: files, checks and
#: the accuracy guard's figures.
EXPORT_SUMMARY_FILE = "export_summary.json"
#: Glob that matches the per-epoch folders (:func:`epoch_folder`).
EPOCH_GLOB = "epoch_[0-9][0-9][0-9]"


def precision_file(model_file: str, precision: str) -> str:
    """The file of one precision beside a model (``model.onnx`` -> ``model.int8.onnx``).

    Args:
        model_file: The fp32 model's name (``model.onnx``, or any ``x.onnx``).
        precision: One of :data:`MODEL_PRECISIONS`; ``fp32`` is the model itself.

    Returns:
        The file name.
    """
    if precision not in MODEL_PRECISIONS:
        raise ValueError(
            f"precision must be one of {MODEL_PRECISIONS}, got {precision!r}"
        )
    if precision == "fp32":
        return model_file
    path = PurePosixPath(model_file)
    return f"{path.stem}.{precision}{path.suffix}"


MODEL_INT8_ONNX = precision_file(MODEL_ONNX, "int8")
MODEL_FP16_ONNX = precision_file(MODEL_ONNX, "fp16")


def epoch_folder(epoch: int) -> str:
    """The per-epoch folder's name (``epoch_007``)."""
    return f"epoch_{epoch:03d}"


def per_split(name: str, split: str) -> str:
    """``name`` of one split (``mistakes.png`` -> ``mistakes_val.png``)."""
    path = PurePosixPath(name)
    return f"{path.stem}_{split}{path.suffix}"


def eval_file(name: str, split: str) -> str:
    """A file of the end-of-training evaluation (``eval/mistakes_test.png``)."""
    return f"{EVAL_DIR}/{per_split(name, split)}"


def checkpoint_file(name: str) -> str:
    """A checkpoint's path inside the run folder (``checkpoints/best.ckpt``)."""
    return f"{CHECKPOINTS_DIR}/{name}"


def history_file(name: str) -> str:
    """One training-history curve's file (``training_history/loss.png``)."""
    return f"{HISTORY_DIR}/{name}.png"
