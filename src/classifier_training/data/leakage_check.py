"""The leakage check a training run makes before fitting (``data.check_leakage``).

Near-duplicate images across the splits a run trains and evaluates on, and, with
``data.group_key``, groups found in several splits
(:func:`~classifier_training.core.leakage.split_leakage`). A leaking run logs one
warning line with the counts and the ``classifier-check-data`` command that lists
them; the counts go to ``metrics.json`` as ``data.leakage``, so a reported
accuracy says when it may be inflated.

Signatures are read from, and added to, the dataset's content-keyed store in
``data.cache_dir`` (default ``DATA_ROOT/.cache``), and the pair counts of one set
of images are kept there too: only the first run on a dataset decodes its images
and searches; a rerun reads each file once. ``data.check_leakage=false`` skips
the check (``metrics.json`` then records ``null``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from classifier_training.config import DataModuleConfig
from classifier_training.core.leakage import leakage_warning, split_leakage
from classifier_training.core.readers import SPLITS, Sample
from classifier_training.core.signature_cache import cache_folder


def check_leakage(
    config: DataModuleConfig, split_samples: Callable[[str], Sequence[Sample]]
) -> dict[str, Any] | None:
    """Count the run's leakage and warn (one line) when there is any.

    Args:
        config: The run's data settings.
        split_samples: The rows of a split as the run uses them (e.g.
            ``ImageFolderDataModule.split_samples``).

    Returns:
        The counts for ``metrics.json`` (``data.leakage``), or ``None`` when
        ``data.check_leakage`` is off.
    """
    if not config.check_leakage:
        return None
    rows = {split: list(split_samples(split)) for split in SPLITS}
    counts = split_leakage(
        {split: samples for split, samples in rows.items() if samples},
        cache_folder(config.data_root, config.cache_dir),
        config.group_key,
    )
    line = leakage_warning(counts, config.data_root, config.cache_dir)
    if line is not None:
        logger.warning(line)
    return counts
