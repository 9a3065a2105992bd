"""The data module's DataLoaders, with the settings that depend on where the
Trainer runs.

The original design requires ``num_workers=0`` on Apple silicon (MPS): worker
processes on macOS are started with ``spawn`` and re-import the whole training
stack, which costs more than it gains for in-memory crops and has been a source of
hangs with MPS. These functions decide that rule without touching the Trainer, so
the data module can apply it before building its loaders.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.accelerators.mps import MPSAccelerator
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from loguru import logger
from torch.utils.data import DataLoader, Dataset, Sampler

from classifier_training.config import DataModuleConfig

__all__ = [
    "build_loader",
    "effective_num_workers",
    "eval_sampler",
    "mps_is_available",
    "runs_on_mps",
]

# Accelerator names for which Lightning picks MPS when the machine has it: "auto"
# prefers MPS over CUDA, and "gpu" means MPS on a Mac (Lightning's own order).
_MPS_WHEN_AVAILABLE = frozenset({"auto", "gpu"})


def mps_is_available() -> bool:
    """Whether this machine has a usable MPS device, by Lightning's own test.

    Returns:
        True on Apple silicon with an MPS-enabled torch build, else False.
    """
    return bool(MPSAccelerator.is_available())


def runs_on_mps(accelerator: str, *, mps_available: bool | None = None) -> bool:
    """Whether a Trainer built with ``accelerator`` will run on MPS.

    Args:
        accelerator: The ``trainer.accelerator`` setting (``"auto"``, ``"cpu"``,
            ``"gpu"``, ``"cuda"``, ``"mps"``, ...); case is ignored.
        mps_available: Whether MPS is present; ``None`` asks Lightning (the
            argument exists so the rule can be checked on any machine).

    Returns:
        True for ``"mps"``, and for ``"auto"``/``"gpu"`` when MPS is present.
    """
    name = accelerator.strip().lower()
    if name == "mps":
        return True
    if name not in _MPS_WHEN_AVAILABLE:
        return False
    return mps_is_available() if mps_available is None else mps_available


def effective_num_workers(
    requested: int, accelerator: str, *, mps_available: bool | None = None
) -> int:
    """The DataLoader worker count to use: ``requested``, or 0 on MPS.

    Args:
        requested: ``data.num_workers`` from the config.
        accelerator: The ``trainer.accelerator`` setting.
        mps_available: Whether MPS is present; ``None`` asks Lightning.

    Returns:
        0 when the Trainer will run on MPS, else ``requested``.

    Raises:
        ValueError: If ``requested`` is negative.
    """
    if requested < 0:
        raise ValueError(f"data.num_workers must be >= 0, got {requested}")
    if requested > 0 and runs_on_mps(accelerator, mps_available=mps_available):
        logger.info(
            "data.num_workers={} -> 0: the Trainer runs on MPS (Apple silicon), "
            "where data loading stays in the main process",
            requested,
        )
        return 0
    return requested


def build_loader(
    dataset: Dataset[Any],
    config: DataModuleConfig,
    accelerator: str,
    sampler: Sampler[int] | None,
    *,
    batch_size: int | None = None,
    drop_last: bool = False,
) -> DataLoader[Any]:
    """A DataLoader over ``dataset`` in the configured batches and workers.

    Args:
        dataset: The split's dataset.
        config: The data config (batch size, workers, pinning, prefetching).
        accelerator: The ``trainer.accelerator`` setting.
        sampler: The order of the rows (``None``: file order).
        batch_size: Images per batch (default: ``config.batch_size``).
        drop_last: Leave out an incomplete last batch.

    Returns:
        The loader.
    """
    workers = effective_num_workers(config.num_workers, accelerator)
    worker_settings: dict[str, Any] = {}
    if workers > 0:  # DataLoader refuses these without workers
        worker_settings["persistent_workers"] = config.persistent_workers
        if config.prefetch_factor is not None:
            worker_settings["prefetch_factor"] = config.prefetch_factor
    # Pinned pages only help a copy to a CUDA device.
    on_cpu = accelerator.strip().lower() == "cpu"
    return DataLoader(
        dataset,
        batch_size=batch_size or config.batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=config.pin_memory and not on_cpu and torch.cuda.is_available(),
        drop_last=drop_last,
        **worker_settings,
    )


def eval_sampler(
    dataset: Dataset[Any], num_replicas: int, rank: int
) -> Sampler[int] | None:
    """File order; under DDP each rank takes a disjoint share, without padding.

    ``DistributedSampler`` would repeat rows to give every rank the same count,
    and the synchronised metrics would count those rows twice.

    Args:
        dataset: The split's dataset.
        num_replicas: Number of processes (world size).
        rank: This process's global rank.

    Returns:
        ``None`` for a single process (the loader's file order), else the share.
    """
    if num_replicas == 1:
        return None
    return UnrepeatedDistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=False
    )
