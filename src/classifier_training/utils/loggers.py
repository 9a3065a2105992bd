"""Logger factories used from ``conf/logging``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger
from loguru import logger


def wandb_has_credentials() -> bool:
    """Whether a W&B API key is configured (environment or ``~/.netrc``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8")
    except OSError:
        return False


def wandb_logger(mode: str = "auto", **kwargs: Any) -> WandbLogger:
    """A ``WandbLogger`` that runs offline when no API key is configured.

    Args:
        mode: ``auto`` (online only with credentials), ``online``, ``offline``
            or ``disabled``.
        **kwargs: Passed to ``WandbLogger`` (project, name, save_dir, ...).

    Returns:
        The logger.
    """
    if mode == "auto":
        mode = "online" if wandb_has_credentials() else "offline"
        if mode == "offline":
            logger.info(
                "no W&B API key found: logging offline (sync later with `wandb sync`)"
            )
    Path(kwargs.get("save_dir", ".")).mkdir(parents=True, exist_ok=True)
    return WandbLogger(offline=mode == "offline", mode=mode, **kwargs)
