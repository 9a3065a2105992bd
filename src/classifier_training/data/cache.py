"""A shared cache of decoded, resized images (``data.cache``).

What is cached is the output of the deterministic first pipeline stage
(:class:`~classifier_training.data.dataset.DecodeAndResize`: decode to RGB, EXIF
orientation, resize the whole crop to ``image_size x image_size``), as one
contiguous ``uint8`` array of shape ``(N, S, S, 3)`` with one row per distinct
image path. Random augmentation runs *after* the cache, so it stays random every
epoch, and a cached image is bit-identical to an uncached one.

* ``ram``: the array lives in shared memory (``torch.Tensor.share_memory_``),
  created before the DataLoader workers start; forked workers map the same pages,
  spawned workers receive a handle to them (torch's pickler) — never a copy.
* ``disk``: a ``.npy`` file opened as a read-only memory map in each process, so
  all workers share the OS page cache. It is named after a key computed from what
  it was built from (each image's path, byte size and modification time, the
  image size, resize mode and padding colour): a changed dataset gets a new key
  and is rebuilt, never served stale. A JSON index sits next to it.
* ``auto``: ``ram`` when the decoded set (distinct images x S x S x 3 bytes) takes
  at most half the available memory, else ``disk``.

Several processes (the ranks of a DDP run) build a cache once: a disk cache is
written by the first process under a file lock while the others wait, then
memory-mapped by all; a RAM cache shared by ``shared_by`` processes of one
machine is such a file in ``/dev/shm`` (memory, not disk), removed when the
process that built it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from filelock import FileLock, Timeout
from loguru import logger
from PIL import Image
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from classifier_training.core.image_io import image_threads
from classifier_training.core.io import atomic_path, atomic_write_json

CacheKind = Literal["ram", "disk"]
CACHE_VERSION = 1
#: ``auto`` uses RAM when the cache needs at most this share of available memory.
RAM_FRACTION = 0.5

ImageArray = np.ndarray[Any, np.dtype[np.uint8]]


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def shared_memory_free() -> int | None:
    """Free bytes in ``/dev/shm`` (where shared tensors live), if it exists.

    Containers often limit it (Docker: 64 MB), far below the machine's memory.
    """
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def cache_bytes(num_images: int, image_size: int) -> int:
    """Size of the decoded set: ``num_images x S x S x 3`` bytes."""
    return num_images * image_size * image_size * 3


def choose_cache_kind(
    num_images: int, image_size: int, available: int | None = None
) -> CacheKind:
    """``ram`` if the decoded set fits comfortably in available memory, else ``disk``.

    Args:
        num_images: Distinct images to cache.
        image_size: Side of the cached images.
        available: Available memory in bytes (default: measured now, and no
            more than the free space of ``/dev/shm``).

    Returns:
        The cache kind for ``data.cache=auto``.
    """
    if available is None:
        available = available_memory()
        shm = shared_memory_free()
        available = available if shm is None else min(available, shm)
    need = cache_bytes(num_images, image_size)
    return "ram" if need <= RAM_FRACTION * available else "disk"


def cache_key(paths: Sequence[Path], image_size: int, settings: dict[str, Any]) -> str:
    """Key of a disk cache: changes whenever an input file or a setting changes.

    Args:
        paths: The cached images, in row order.
        image_size: Side of the cached images.
        settings: Other settings the cached pixels depend on (resize mode, fill).

    Returns:
        A hex digest.
    """
    digest = hashlib.sha256()
    header = {"version": CACHE_VERSION, "size": image_size, **settings}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\n{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class ImageCache:
    """Decoded ``S x S`` RGB images in one shared ``uint8`` array, indexed by path.

    Build one with :func:`build_cache`. Pickling keeps it shared: the RAM kind
    travels as a shared-memory tensor, the disk kind as its file name (reopened
    as a memory map in the receiving process).

    Args:
        paths: Image path of each row of the array.
        kind: ``ram`` or ``disk``.
        image_size: Side of the cached images.
        storage: The shared tensor (``ram``).
        file: The ``.npy`` file (``disk``).
        failures: Paths that could not be decoded, with the reason.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        kind: CacheKind,
        image_size: int,
        storage: torch.Tensor | None = None,
        file: Path | None = None,
        failures: dict[str, str] | None = None,
    ) -> None:
        self.kind: CacheKind = kind
        self.image_size = image_size
        self.failures = dict(failures or {})
        self.index = {
            str(p): i for i, p in enumerate(paths) if str(p) not in self.failures
        }
        self.storage = storage
        self.file = file
        self._array: ImageArray | None = None

    def __len__(self) -> int:
        """Number of cached (decodable) images."""
        return len(self.index)

    @property
    def array(self) -> ImageArray:
        """The ``(N, S, S, 3)`` array (a view: no copy)."""
        if self._array is None:
            if self.storage is not None:
                self._array = self.storage.numpy()
            else:
                assert self.file is not None
                self._array = np.load(self.file, mmap_mode="r")
        return self._array

    @property
    def nbytes(self) -> int:
        """Bytes held by the array."""
        return int(self.array.nbytes)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the numpy view (a memmap would be copied)."""
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def get(self, path: Path) -> Image.Image | None:
        """The cached image of ``path``, or ``None`` if it is not cached."""
        row = self.index.get(str(path))
        if row is None:
            return None
        # fromarray copies S*S*3 bytes into the PIL image the augmentations need.
        return Image.fromarray(self.array[row])


class CachedLoader:
    """An image loader that serves the cache and falls back to decoding.

    Args:
        cache: The cache.
        fallback: Loader for paths not in the cache (the uncached stage 1).
    """

    def __init__(self, cache: ImageCache, fallback: Callable[[Path], Image.Image]):
        self.cache = cache
        self.fallback = fallback

    def __call__(self, path: Path) -> Image.Image:
        """The cached image of ``path`` (decoded with ``fallback`` if absent)."""
        image = self.cache.get(path)
        return image if image is not None else self.fallback(path)


def _fill(
    target: ImageArray,
    paths: Sequence[Path],
    loader: Callable[[Path], Image.Image],
    image_size: int,
    description: str,
    workers: int | None,
) -> dict[str, str]:
    """Decode every path into ``target`` (threads: PIL releases the GIL)."""
    failures: dict[str, str] = {}
    expected = (image_size, image_size)

    def work(item: tuple[int, Path]) -> None:
        row, path = item
        try:
            image = loader(path)
            if image.size != expected or image.mode != "RGB":
                raise ValueError(f"loader returned {image.mode} {image.size}")
            target[row] = np.asarray(image, dtype=np.uint8)
        except Exception as error:  # reported per file by the caller
            failures[str(path)] = f"{type(error).__name__}: {error}"

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=len(paths))
        threads = workers or image_threads()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(work, enumerate(paths)):
                progress.advance(task)
    return failures


#: Where a RAM cache shared by the processes of one machine lives (memory).
SHARED_RAM_DIR = Path("/dev/shm")


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed); wait for it if taken.

    The other processes building the same cache wait here, then find it built.
    """
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info(f"waiting for another process to build the cache ({path})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _remove_at_exit(*files: Path) -> None:
    """Delete ``files`` when this process exits (the maps of others stay valid)."""

    def remove() -> None:
        for file in files:
            file.unlink(missing_ok=True)

    atexit.register(remove)


def build_cache(
    paths: Sequence[Path],
    loader: Callable[[Path], Image.Image],
    image_size: int,
    kind: CacheKind,
    cache_dir: Path | None = None,
    name: str = "images",
    settings: dict[str, Any] | None = None,
    workers: int | None = None,
    shared_by: int = 1,
) -> ImageCache:
    """Build (or, for ``disk``, reuse when its key matches) a cache of ``paths``.

    Args:
        paths: Images to cache; duplicates are stored once.
        loader: The deterministic stage 1 (must return ``S x S`` RGB images).
        image_size: ``S``.
        kind: ``ram`` or ``disk``.
        cache_dir: Folder of the disk cache (required for ``disk``).
        name: Prefix of the cache files and progress label (e.g. the split).
        settings: Other settings the pixels depend on, part of the disk key.
        workers: Decoding threads.
        shared_by: Processes of this machine that use the cache (DDP ranks). Above
            1, a ``ram`` cache is built once, as a file in ``/dev/shm`` that every
            process maps, instead of one private copy per process.

    Returns:
        The cache; images that failed to decode are listed in ``failures``.
    """
    unique = list(dict.fromkeys(paths))
    shape = (len(unique), image_size, image_size, 3)
    label = f"caching {name} images ({kind}, {image_size}px)"
    if kind == "ram" and shared_by > 1:
        return _shared_ram_cache(unique, loader, image_size, name, settings, workers)
    if kind == "ram":
        shm = shared_memory_free()
        if shm is not None and cache_bytes(len(unique), image_size) > shm:
            raise OSError(
                f"the RAM cache needs {cache_bytes(len(unique), image_size)} bytes "
                f"but /dev/shm has {shm} free (use data.cache=disk, or enlarge "
                "/dev/shm, e.g. docker run --shm-size)"
            )
        # empty, not zeros: zeroing would commit the pages twice (once here, once
        # in shared memory); every row is written, failed rows are never read.
        storage = torch.empty(shape, dtype=torch.uint8).share_memory_()  # type: ignore[no-untyped-call]
        failures = _fill(storage.numpy(), unique, loader, image_size, label, workers)
        return ImageCache(unique, "ram", image_size, storage=storage, failures=failures)
    if cache_dir is None:
        raise ValueError("a disk cache needs a cache_dir")
    cache, _ = _disk_cache(
        unique, loader, image_size, cache_dir, name, settings, workers, label
    )
    return cache


def _shared_ram_cache(
    unique: list[Path],
    loader: Callable[[Path], Image.Image],
    image_size: int,
    name: str,
    settings: dict[str, Any] | None,
    workers: int | None,
) -> ImageCache:
    """A RAM cache for all processes of this machine: a memory file they all map."""
    need = cache_bytes(len(unique), image_size)
    shm = shared_memory_free()
    if shm is None:
        raise OSError("a RAM cache shared by several processes needs /dev/shm")
    folder = SHARED_RAM_DIR / f"classifier-training-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    label = f"caching {name} images (ram, shared, {image_size}px)"
    if need > shm and not _cache_file(unique, image_size, folder, name, settings)[0]:
        raise OSError(
            f"the RAM cache needs {need} bytes but /dev/shm has {shm} free (use "
            "data.cache=disk, or enlarge /dev/shm, e.g. docker run --shm-size)"
        )
    cache, built = _disk_cache(
        unique, loader, image_size, folder, name, settings, workers, label
    )
    assert cache.file is not None
    if built:  # the builder outlives the other ranks (rank 0 ends a run last)
        lock = folder / f".{cache.file.stem.rsplit('-', 1)[0]}.lock"
        _remove_at_exit(cache.file, cache.file.with_suffix(".json"), lock)
    cache.kind = "ram"
    cache.array  # noqa: B018  (map it now: forked loader workers inherit the map)
    return cache


def _disk_cache(
    unique: list[Path],
    loader: Callable[[Path], Image.Image],
    image_size: int,
    cache_dir: Path,
    name: str,
    settings: dict[str, Any] | None,
    workers: int | None,
    label: str,
) -> tuple[ImageCache, bool]:
    """Reuse the disk cache of ``unique`` when its key matches, else build it (once,
    under a lock, however many processes ask at the same time).

    Returns:
        The cache, and whether this call built it.
    """
    _, file, key, stem = _cache_file(unique, image_size, cache_dir, name, settings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(cache_dir / f".{stem}.lock"):
        found = _reuse(file, key, unique, image_size)
        if found is not None:
            return found, False
        cache = _write_disk_cache(
            file, key, stem, unique, loader, image_size, workers, label
        )
        return cache, True


def _cache_file(
    unique: list[Path],
    image_size: int,
    cache_dir: Path,
    name: str,
    settings: dict[str, Any] | None,
) -> tuple[bool, Path, str, str]:
    """``(exists, file, key, stem)`` of the disk cache of ``unique``."""
    key = cache_key(unique, image_size, settings or {})
    # The file list and the settings are in the stem, so only a cache of the same
    # files and settings whose contents changed counts as stale; other datasets
    # and runs with other settings sharing data.cache_dir are left alone.
    identity = json.dumps([[str(p) for p in unique], settings or {}], sort_keys=True)
    stem = f"{name}-{image_size}px-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    file = cache_dir / f"{stem}-{key[:24]}.npy"
    return file.is_file(), file, key, stem


def _reuse(
    file: Path, key: str, unique: list[Path], image_size: int
) -> ImageCache | None:
    """The cache in ``file`` if it is complete and built from the same inputs."""
    index_file = file.with_suffix(".json")
    if file.is_file() and index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        if index.get("key") == key:  # the key covers paths, sizes and mtimes
            logger.info(f"using disk cache {file}")
            return ImageCache(
                unique, "disk", image_size, file=file, failures=index["failures"]
            )
    return None


def _write_disk_cache(
    file: Path,
    key: str,
    stem: str,
    unique: list[Path],
    loader: Callable[[Path], Image.Image],
    image_size: int,
    workers: int | None,
    label: str,
) -> ImageCache:
    """Decode ``unique`` into ``file`` and its JSON index (caller holds the lock)."""
    cache_dir = file.parent
    index_file = file.with_suffix(".json")
    shape = (len(unique), image_size, image_size, 3)
    for stale in cache_dir.glob(f"{stem}-*"):
        if stale.suffix in (".npy", ".json") and stale.stem != file.stem:
            stale.unlink(missing_ok=True)  # built from other data: never reused
    with atomic_path(file) as tmp:
        target = np.lib.format.open_memmap(  # type: ignore[no-untyped-call]
            tmp, mode="w+", dtype=np.uint8, shape=shape
        )
        failures = _fill(target, unique, loader, image_size, label, workers)
        target.flush()
        del target
    atomic_write_json(
        index_file,
        {
            "version": CACHE_VERSION,
            "key": key,
            "image_size": image_size,
            "paths": [str(p) for p in unique],
            "failures": failures,
        },
    )
    return ImageCache(unique, "disk", image_size, file=file, failures=failures)
