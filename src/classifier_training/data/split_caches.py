"""The decoded-image caches of a run's splits (``data.cache``), one per split.

Building a cache decodes every image in full, so it also finds the truncated
files the start-up header pass cannot see: they stop the run
(``on_bad_image=error``) or their rows are left out (``skip``).
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from classifier_training.config import DataModuleConfig
from classifier_training.core.readers import DataError, Sample
from classifier_training.data.cache import (
    CachedLoader,
    CacheKind,
    ImageCache,
    build_cache,
    choose_cache_kind,
)
from classifier_training.data.dataset import ImageLoader
from classifier_training.data.splits import SplitRows
from classifier_training.data.transforms import ResizeToInput


@dataclass(frozen=True)
class CachedSplits:
    """The caches built, and the rows whose image they hold.

    Attributes:
        rows: Rows per split without those whose image failed to decode.
        caches: The cache of each non-empty split.
        loaders: Per split, the loader that serves its cache.
        skipped: Rows per split left out because their image failed to decode.
    """

    rows: SplitRows
    caches: dict[str, ImageCache]
    loaders: dict[str, ImageLoader]
    skipped: dict[str, int]


def cache_kind(config: DataModuleConfig, rows: SplitRows) -> CacheKind:
    """``data.cache`` with ``auto`` resolved by the size of the decoded set."""
    if config.cache == "auto":
        distinct = sum(len({s.image for s in samples}) for samples in rows.values())
        return choose_cache_kind(distinct, config.image_size)
    assert config.cache != "none"
    return config.cache


def cache_splits(
    rows: SplitRows,
    config: DataModuleConfig,
    resize: ResizeToInput,
    decode: ImageLoader,
    shared_by: int = 1,
) -> CachedSplits:
    """Decode every image of ``rows`` once into a shared cache per split.

    Args:
        rows: Rows per split.
        config: The data config (``cache``, ``cache_dir``, ``image_size``,
            ``on_bad_image``).
        resize: The resize stage (its settings are part of the disk cache key).
        decode: The uncached first stage (decode and resize).
        shared_by: Processes of this machine that use the caches (DDP ranks).

    Returns:
        The caches and the rows they serve.

    Raises:
        DataError: If a cache cannot be built, or (``on_bad_image=error``) an
            image fails to decode, with one line per such row.
    """
    kind = cache_kind(config, rows)
    cache_dir = config.cache_dir or config.data_root / ".cache"
    settings = {"resize_mode": resize.mode, "fill": list(resize.fill)}
    kept: SplitRows = {}
    caches: dict[str, ImageCache] = {}
    skipped: dict[str, int] = {}
    failed: list[str] = []
    for split, samples in rows.items():
        kept[split] = samples
        if not samples:
            continue
        try:
            cache = build_cache(
                [s.image for s in samples],
                decode,
                config.image_size,
                kind,
                cache_dir=cache_dir,
                name=split,
                settings=settings,
                shared_by=shared_by,
            )
        except OSError as error:
            where = cache_dir if kind == "disk" else "data.cache=ram"
            raise DataError(
                f"{where}: cannot build the {kind} image cache ({error}); "
                "set data.cache_dir to a writable folder or data.cache=none"
            ) from None
        caches[split] = cache
        kept[split], lines = _decodable(samples, cache.failures)
        skipped[split] = len(lines)
        failed += lines
    if failed and config.on_bad_image == "error":
        raise DataError(f"{len(failed)} unreadable image row(s):\n" + "\n".join(failed))
    for line in failed:
        logger.warning(f"{line}; skipped")
    loaders: dict[str, ImageLoader] = {
        split: CachedLoader(cache, decode) for split, cache in caches.items()
    }
    return CachedSplits(kept, caches, loaders, skipped)


def _decodable(
    samples: list[Sample], failures: dict[str, str]
) -> tuple[list[Sample], list[str]]:
    """The rows whose image decoded, and one line per row whose image did not."""
    bad = [s for s in samples if str(s.image) in failures]
    lines = [
        f"{s.where}: cannot decode image {s.image} ({failures[str(s.image)]})"
        for s in bad
    ]
    return [s for s in samples if str(s.image) not in failures], lines
