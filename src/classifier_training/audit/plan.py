"""What a label audit will do, checked before any training starts.

:func:`build_plan` composes the recipe with Hydra's compose API (unknown keys and
options fail here, in one line), validates the data settings and the dataset
(the same start-up validation as ``classifier-train``), checks the group key,
assigns the folds and says which classes the folds cover only partly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from classifier_training.audit.folds import (
    ClassCoverage,
    assign_folds,
    auditable,
    check_fold_count,
    class_coverage,
)
from classifier_training.config import DataModuleConfig, load_data_config
from classifier_training.core import run_files as rf
from classifier_training.core.errors import UsageError
from classifier_training.core.groups import group_of
from classifier_training.core.readers import SPLITS, Sample, canonical_split
from classifier_training.data.splits import read_splits, report_group_coverage
from classifier_training.train import register_configs, resolve_data_values

#: The recipe classifier-train uses by default.
DEFAULT_CONFIG = "train_jersey_ocr_resnet18"
#: Settings the audit sets per fold; an override of them is refused.
RESERVED_KEYS = (
    "data.data_root",
    "data.exclude_rows",
    "ckpt_path",
    "hydra.run.dir",
    "hydra.sweep.dir",
    "hydra.mode",
)
#: Callbacks of the recipe the folds leave out: the fold models are never
#: deployed (no ONNX export) nor resumed (no ``last.ckpt``); neither changes the
#: weights a fold selects. An override that names one keeps the user's choice.
FOLD_DROPPED_CALLBACKS = ("onnx_export", "last_checkpoint")
# Override values that need no quotes in Hydra's grammar.
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+-]+")


def override_value(text: str) -> str:
    """``text`` as the right side of a Hydra override (quoted when it must be)."""
    if _PLAIN.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class AuditPlan:
    """Everything the folds and the report need, fixed at start-up.

    Attributes:
        data_root: The dataset root (absolute).
        out: The audit folder.
        config_name: The recipe.
        overrides: The recipe's overrides for every fold (the user's, the
            audit's cache settings, the data root and the group key).
        folds: Number of folds.
        splits: The splits audited (``train``, ``val``, ``test``).
        group_key: The group key (``--group-by`` or ``data.group_key``).
        seed: Seed of the fold assignment.
        data: The validated data settings.
        class_names: The train split's classes, in index order.
        rows: The rows per split (train always; val/test when audited).
        fold_of: The fold holding out each train row.
        auditable: Per train row, whether its fold kept a row of its class.
        coverage: The classes the folds cover only partly.
    """

    data_root: Path
    out: Path
    config_name: str
    overrides: tuple[str, ...]
    folds: int
    splits: tuple[str, ...]
    group_key: str | None
    seed: int
    data: DataModuleConfig
    class_names: list[str]
    rows: dict[str, list[Sample]]
    fold_of: npt.NDArray[np.int64]
    auditable: npt.NDArray[np.bool_]
    coverage: list[ClassCoverage] = field(default_factory=list)

    def groups(self, split: str) -> list[str] | None:
        """Each row's group id in ``split`` (``None`` without a group key)."""
        if self.group_key is None:
            return None
        return [group_of(s, self.group_key) for s in self.rows[split]]

    def fold_dir(self, fold: int) -> Path:
        """``OUT/folds/<fold>``."""
        return self.out / rf.FOLDS_DIR / str(fold)

    def held_out(self, fold: int) -> list[int]:
        """Indices of the train rows fold ``fold`` holds out."""
        return [int(i) for i in np.flatnonzero(self.fold_of == fold)]


def parse_splits(text: str) -> tuple[str, ...]:
    """``train,valid`` -> ``("train", "val")`` (canonical, in the order given).

    Raises:
        UsageError: For a name that is no split.
    """
    names: list[str] = []
    for part in text.split(","):
        try:
            split = canonical_split(part.strip())
        except ValueError as error:
            raise UsageError(f"--splits: {error}") from None
        if split not in names:
            names.append(split)
    return tuple(names)


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse overrides that do not parse, sweep, or set what the audit sets.

    Raises:
        UsageError: Naming the override.
    """
    parser = OverridesParser.create()
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as error:
            first = str(error).strip().splitlines()[0]
            raise UsageError(f"{text}: {first}") from None
        if override.is_sweep_override():
            raise UsageError(f"{text}: the audit trains one recipe; no sweep syntax")
        if override.key_or_group in RESERVED_KEYS:
            raise UsageError(
                f"{text}: the audit sets {override.key_or_group} itself "
                "(DATA_ROOT, --out)"
            )


def override_keys(overrides: Sequence[str]) -> set[str]:
    """The keys the overrides set (``data.cache`` for ``data.cache=ram``)."""
    parser = OverridesParser.create()
    return {o.key_or_group for o in parser.parse_overrides(list(overrides))}


def compose_recipe(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config one fold's ``classifier-train`` would compose.

    Raises:
        UsageError: If the overrides do not compose (unknown key or option).
    """
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("classifier_training.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0]
        raise UsageError(f"--config-name {config_name}: {first}") from None
    finally:
        GlobalHydra.instance().clear()


def audit_overrides(
    user: Sequence[str], data_root: Path, out: Path, group_by: str | None
) -> list[str]:
    """The overrides of every fold: the user's, then the audit's own.

    Unless the user chose otherwise, the folds use the disk image cache in the
    audit folder: each fold leaves out other rows, but the cache holds every
    train row, so it is built once and shared (and the dataset root is only
    read).

    Raises:
        UsageError: If ``--group-by`` and ``data.group_key`` are both given.
    """
    keys = override_keys(user)
    if group_by is not None and "data.group_key" in keys:
        raise UsageError("give the group key once: --group-by or data.group_key")
    extra = [f"data.data_root={override_value(str(data_root))}"]
    if "data.cache" not in keys:
        extra.append("data.cache=disk")
    if "data.cache_dir" not in keys:
        cache = out.resolve() / rf.AUDIT_CACHE_DIR
        extra.append(f"data.cache_dir={override_value(str(cache))}")
    if group_by is not None:
        extra.append(f"data.group_key={override_value(group_by)}")
    return [*user, *extra]


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that holds something other than an earlier audit.

    Raises:
        UsageError: Naming the folder.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; choose a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / rf.FOLDS_DIR).is_dir():
        raise UsageError(
            f"--out {out}: exists and is not an audit folder; choose a new folder "
            "(an earlier audit's folder is resumed)"
        )


def build_plan(
    data_root: Path,
    out: Path,
    *,
    config_name: str = DEFAULT_CONFIG,
    overrides: Sequence[str] = (),
    folds: int = 4,
    splits: Sequence[str] = ("train",),
    group_by: str | None = None,
    seed: int = 0,
) -> AuditPlan:
    """Check everything the audit needs and assign the folds.

    Args:
        data_root: The dataset root.
        out: The audit folder.
        config_name: The recipe.
        overrides: The user's Hydra overrides for the recipe.
        folds: Number of folds (>= 2).
        splits: The splits to audit (canonical names).
        group_by: The group key (else the recipe's ``data.group_key``).
        seed: Seed of the fold assignment.

    Returns:
        The plan.

    Raises:
        ClassifierError: For bad arguments, settings or data (one line each).
    """
    check_fold_count(folds)
    check_overrides(overrides)
    check_out_folder(out)
    root = data_root.resolve()
    if not root.is_dir():
        raise UsageError(f"{data_root}: dataset root folder not found")
    all_overrides = audit_overrides(overrides, root, out, group_by)
    cfg = compose_recipe(config_name, all_overrides)
    keys = override_keys(overrides)
    dropped = [
        f"~callbacks.{name}"
        for name in FOLD_DROPPED_CALLBACKS
        if (cfg.get("callbacks") or {}).get(name) is not None
        and f"callbacks.{name}" not in keys
    ]
    if dropped:
        all_overrides += dropped
        cfg = compose_recipe(config_name, all_overrides)
    data = load_data_config(resolve_data_values(cfg))
    found = read_splits(root, data.on_bad_image)
    for split in splits:
        if split not in SPLITS or not found.rows.get(split):
            raise UsageError(f"--splits {split}: {data_root} has no {split} rows")
    if data.group_key is not None:
        report_group_coverage(found, data.group_key)
    train = found.rows["train"]
    class_names = sorted({s.label for s in train})
    groups = (
        [group_of(s, data.group_key) for s in train]
        if data.group_key is not None
        else None
    )
    labels = [s.label for s in train]
    fold_of = assign_folds(labels, groups, folds, seed)
    rows: dict[str, Any] = {"train": train}
    rows.update({s: found.rows[s] for s in splits if s != "train"})
    return AuditPlan(
        data_root=root,
        out=out,
        config_name=config_name,
        overrides=tuple(all_overrides),
        folds=folds,
        splits=tuple(splits),
        group_key=data.group_key,
        seed=seed,
        data=data,
        class_names=class_names,
        rows=rows,
        fold_of=fold_of,
        auditable=auditable(labels, fold_of),
        coverage=class_coverage(labels, fold_of, folds),
    )
