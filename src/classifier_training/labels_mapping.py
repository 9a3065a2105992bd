"""``labels_mapping.json``: everything a deployment needs beside ``model.onnx``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from classifier_training.config import DataModuleConfig
from classifier_training.data.preprocessing import eval_preprocessing_spec
from classifier_training.utils.io import atomic_write_json

LABELS_MAPPING_FILE = "labels_mapping.json"
CHECKPOINTS_DIR = "checkpoints"


def build_labels_mapping(
    class_to_idx: dict[str, int], config: DataModuleConfig
) -> dict[str, Any]:
    """Describe classes and evaluation preprocessing.

    Args:
        class_to_idx: Class name to output index.
        config: The data config (image size, normalisation, resize policy).

    Returns:
        A JSON-serialisable mapping with ``num_classes``, ``class_to_idx``,
        ``idx_to_class`` (string keys, as JSON requires), ``normalization``,
        ``image_size`` and ``preprocessing``.
    """
    ordered = sorted(class_to_idx.items(), key=lambda item: item[1])
    return {
        "num_classes": len(ordered),
        "class_to_idx": dict(ordered),
        "idx_to_class": {str(idx): name for name, idx in ordered},
        "normalization": {"mean": list(config.mean), "std": list(config.std)},
        "image_size": config.image_size,
        "preprocessing": eval_preprocessing_spec(config),
    }


def write_labels_mapping(
    path: Path, class_to_idx: dict[str, int], config: DataModuleConfig
) -> Path:
    """Write ``labels_mapping.json`` atomically.

    Args:
        path: Destination file (or a folder, to write ``labels_mapping.json`` in it).
        class_to_idx: Class name to output index.
        config: The data config.

    Returns:
        The path written.
    """
    if path.is_dir():
        path = path / LABELS_MAPPING_FILE
    return atomic_write_json(path, build_labels_mapping(class_to_idx, config))


def read_labels_mapping(path: Path) -> dict[str, Any]:
    """Read and sanity-check a ``labels_mapping.json``.

    Args:
        path: The file.

    Returns:
        The mapping.

    Raises:
        ValueError: If the file is missing keys or inconsistent (file named).
    """
    try:
        mapping: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read labels mapping ({error})") from None
    for key in ("num_classes", "idx_to_class", "image_size", "normalization"):
        if key not in mapping:
            raise ValueError(f"{path}: labels mapping lacks {key!r}")
    if len(mapping["idx_to_class"]) != mapping["num_classes"]:
        raise ValueError(
            f"{path}: idx_to_class has {len(mapping['idx_to_class'])} "
            f"entries for num_classes={mapping['num_classes']}"
        )
    return mapping


def run_folder(model_path: Path) -> Path:
    """The run folder a model file belongs to.

    ``RUN/checkpoints/x.ckpt`` belongs to ``RUN``; any other file (``RUN/model.onnx``,
    a copied checkpoint) to the folder it is in.

    Args:
        model_path: A ``.onnx`` or checkpoint file.

    Returns:
        The folder (absolute).
    """
    folder = model_path.resolve().parent
    return folder.parent if folder.name == CHECKPOINTS_DIR else folder


def mapping_candidates(model_path: Path) -> list[Path]:
    """Where the ``labels_mapping.json`` of a model file is looked for, in order.

    Beside the model first, then in its :func:`run_folder` when that is another
    folder (``RUN/checkpoints/x.ckpt`` -> ``RUN/labels_mapping.json``). Every
    loader (ONNX, checkpoint, export) searches these places in this order.

    Args:
        model_path: A ``.onnx`` or checkpoint file.

    Returns:
        One or two candidate files (they need not exist).
    """
    beside = model_path.parent
    folders = [beside]
    run = run_folder(model_path)
    if run != beside.resolve():
        folders.append(run)
    return [folder / LABELS_MAPPING_FILE for folder in folders]
