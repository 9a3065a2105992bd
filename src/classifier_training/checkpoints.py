"""Reading this project's Lightning checkpoints safely, for export and inference.

Checkpoints are loaded with ``torch.load(weights_only=True)``: no arbitrary pickles.
Their ``state_dict`` holds the weights Lightning evaluated, which are the EMA
weights when the run averaged weights (the raw ones sit in ``current_model_state``
and are ignored). Checkpoints written while the ``onnx_export`` callback is active
also carry the full labels mapping under ``checkpoint["labels_mapping"]`` and the
model class under ``checkpoint["model_class"]``, so a copied ``best.ckpt`` is
usable on its own.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classifier_training.labels_mapping import (
    LABELS_MAPPING_FILE,
    mapping_candidates,
    read_labels_mapping,
)
from classifier_training.models import BaseClassificationModel, ImageClassifier

CHECKPOINT_MAPPING_KEY = "labels_mapping"
CHECKPOINT_CLASS_KEY = "model_class"


class CheckpointError(ValueError):
    """A checkpoint or its labels mapping cannot be used (message names the file)."""


@dataclass
class CheckpointModel:
    """A network rebuilt from a Lightning checkpoint of this project.

    Attributes:
        network: The network holding the checkpoint's ``state_dict`` weights (the
            EMA weights when EMA was on), in eval mode on the CPU, float32.
        hparams: The checkpoint's hyper-parameters.
        model_class: Dotted path of the ``BaseClassificationModel`` subclass.
        labels_mapping: The labels mapping stored in the checkpoint, if any.
    """

    network: nn.Module
    hparams: dict[str, Any]
    model_class: str
    labels_mapping: dict[str, Any] | None


def model_class_path(module: nn.Module) -> str:
    """``package.module.ClassName`` of a model (stored in checkpoints)."""
    return f"{type(module).__module__}.{type(module).__qualname__}"


def _import_model_class(path: str, checkpoint: Path) -> type[BaseClassificationModel]:
    module_name, _, class_name = path.rpartition(".")
    if not module_name.startswith("classifier_training."):
        raise CheckpointError(f"{checkpoint}: refusing to import model class {path!r}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise CheckpointError(f"{checkpoint}: unknown model class {path!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseClassificationModel)):
        raise CheckpointError(
            f"{checkpoint}: {path!r} is not a BaseClassificationModel"
        )
    return cls


# Classes of earlier versions: one per ResNet, now ``ImageClassifier(arch=...)``.
_OLD_CLASSES = {
    f"classifier_training.models.resnet.ResNet{depth}ClassificationModel": (
        f"resnet{depth}"
    )
    for depth in (18, 34, 50)
}


def _candidates(
    checkpoint: Path, stored: str | None, hparams: dict[str, Any]
) -> list[tuple[type[BaseClassificationModel], dict[str, Any]]]:
    if stored in _OLD_CLASSES:
        return [(ImageClassifier, {**hparams, "arch": _OLD_CLASSES[stored]})]
    if stored is not None:
        return [(_import_model_class(stored, checkpoint), hparams)]
    # Without a class name: the architecture whose keys and shapes fit the
    # weights exactly is the one (the recorded arch first).
    archs = [hparams["arch"]] if "arch" in hparams else []
    archs += [a for a in _OLD_CLASSES.values() if a not in archs]
    return [(ImageClassifier, {**hparams, "arch": arch}) for arch in archs]


def _known_args(cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """Drop hyper-parameters of earlier versions (e.g. ``learning_rate``)."""
    names = inspect.signature(cls).parameters
    return {k: v for k, v in hparams.items() if k in names}


def load_checkpoint_model(path: Path) -> CheckpointModel:
    """Rebuild the network of a checkpoint (loaded with ``weights_only=True``).

    Args:
        path: A ``.ckpt`` file written by ``classifier-train``.

    Returns:
        The network with the checkpoint's ``state_dict`` weights and its metadata.

    Raises:
        CheckpointError: If the file is missing, unreadable, or fits no known model.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors have many types
        raise CheckpointError(
            f"{path}: cannot load checkpoint safely (weights_only): {error}"
        ) from None
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "num_classes" not in hparams:
        raise CheckpointError(f"{path}: checkpoint hyper-parameters lack num_classes")
    hparams.update(pretrained=False, weights_path=None)  # weights come from here
    state = checkpoint["state_dict"]
    errors: list[str] = []
    stored = checkpoint.get(CHECKPOINT_CLASS_KEY)
    for cls, args in _candidates(path, stored, hparams):
        try:
            model = cls(**_known_args(cls, args))
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, ValueError) as error:
            name = args.get("arch", cls.__name__)
            errors.append(f"{name}: {str(error).splitlines()[0]}")
            continue
        mapping = checkpoint.get(CHECKPOINT_MAPPING_KEY)
        network = copy.deepcopy(model.network).to(device="cpu", dtype=torch.float32)
        return CheckpointModel(
            network=network.eval(),
            hparams=args,
            model_class=model_class_path(model),
            labels_mapping=dict(mapping) if mapping is not None else None,
        )
    raise CheckpointError(f"{path}: weights fit no known model ({'; '.join(errors)})")


def resolve_labels_mapping(
    checkpoint_path: Path, loaded: CheckpointModel, explicit: Path | None = None
) -> tuple[dict[str, Any], str]:
    """The labels mapping for a checkpoint, checked against its classes.

    Order: ``explicit`` file, the mapping stored in the checkpoint, then the
    places :func:`~classifier_training.labels_mapping.mapping_candidates` lists
    (beside the checkpoint, then the run folder of ``RUN/checkpoints/x.ckpt``).

    Args:
        checkpoint_path: The ``.ckpt`` file.
        loaded: Its :func:`load_checkpoint_model` result.
        explicit: A mapping file given by the user.

    Returns:
        The mapping and where it came from (a file, or the checkpoint).

    Raises:
        CheckpointError: If none is found or it disagrees with the checkpoint.
    """
    mapping: dict[str, Any] | None = None
    source = str(checkpoint_path)
    if explicit is not None:
        if not explicit.is_file():
            raise CheckpointError(f"{explicit}: labels mapping file not found")
        mapping, source = read_labels_mapping(explicit), str(explicit)
    elif loaded.labels_mapping is not None:
        mapping = loaded.labels_mapping
    else:
        candidates = mapping_candidates(checkpoint_path)
        for candidate in candidates:
            if candidate.is_file():
                mapping, source = read_labels_mapping(candidate), str(candidate)
                break
        else:
            raise CheckpointError(
                f"{checkpoint_path}: no {LABELS_MAPPING_FILE} in the checkpoint or in "
                f"{', '.join(str(c.parent) for c in candidates)}; pass the run's "
                f"{LABELS_MAPPING_FILE} with --labels-mapping"
            )
    assert mapping is not None
    num_classes = loaded.hparams["num_classes"]
    if mapping["num_classes"] != num_classes:
        raise CheckpointError(
            f"{source}: {mapping['num_classes']} classes, but {checkpoint_path} "
            f"has {num_classes}; the mapping belongs to another run"
        )
    names = loaded.hparams.get("class_names")
    if names is not None:
        mapped = [mapping["idx_to_class"][str(i)] for i in range(len(names))]
        if mapped != list(names):
            raise CheckpointError(
                f"{source}: class names {mapped[:5]}... differ from those in "
                f"{checkpoint_path} {list(names)[:5]}...; the mapping belongs to "
                "another run"
            )
    return mapping, source
