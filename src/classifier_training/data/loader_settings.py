"""DataLoader settings that depend on where the Trainer runs.

The original design requires ``num_workers=0`` on Apple silicon (MPS): worker
processes on macOS are started with ``spawn`` and re-import the whole training
stack, which costs more than it gains for in-memory crops and has been a source of
hangs with MPS. These functions decide that rule without touching the Trainer, so
the data module can apply it before building its loaders.
"""

from __future__ import annotations

from lightning.fabric.accelerators.mps import MPSAccelerator
from loguru import logger

__all__ = ["effective_num_workers", "mps_is_available", "runs_on_mps"]

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
