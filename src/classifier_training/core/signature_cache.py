"""Near-duplicate signatures stored by file content: each image is reduced once.

The near-duplicate search (:mod:`classifier_training.core.near_duplicates`)
needs a small signature of every image. Computing one means decoding the image;
looking one up here means hashing the file's bytes (no decode). Entries are keyed
by the SHA-256 of the file's bytes, so renaming, hard-linking or copying an image
(``classifier-split``) reuses its signature, and a changed file gets a new one.
The file name carries
:data:`~classifier_training.core.near_duplicates.SIGNATURE_VERSION`: a new
signature method starts a new store instead of reading stale ones.

The store is one ``.npz`` file in the dataset's cache folder (``DATA_ROOT/.cache``
by default, as ``data.cache_dir``), shared by ``classifier-check-data`` and
training. Writers merge under a file lock and replace the file atomically, so
concurrent runs lose nothing and readers never see half a file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock

from classifier_training.core.image_io import image_threads, load_image
from classifier_training.core.io import atomic_path
from classifier_training.core.near_duplicates import (
    SIGNATURE_LENGTH,
    SIGNATURE_VERSION,
    SignatureArray,
    signature,
)

#: The store's file name (in the cache folder).
SIGNATURE_FILE = f"near-duplicate-signatures-v{SIGNATURE_VERSION}.npz"
#: The cache folder below the dataset root when none is given (``data.cache_dir``).
CACHE_FOLDER = ".cache"
_DIGEST_BYTES = 32


def cache_folder(data_root: Path, cache_dir: Path | None = None) -> Path:
    """Where a dataset's caches live: ``cache_dir``, else ``DATA_ROOT/.cache``."""
    return cache_dir if cache_dir is not None else data_root / CACHE_FOLDER


def content_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, hex (the store's key).

    Raises:
        OSError: If the file cannot be read.
    """
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class SignatureCache:
    """Signatures by content digest: those on disk, plus those added this run.

    Thread-safe: the image pass adds from several threads.

    Args:
        folder: The cache folder; ``None`` keeps everything in memory.

    Attributes:
        reused: Lookups answered from the store.
        computed: Signatures added (computed) this run.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._entries: dict[str, SignatureArray] = {}
        self._added: dict[str, SignatureArray] = {}
        self._lock = threading.Lock()
        self.reused = 0
        self.computed = 0
        if folder is not None:
            self._entries.update(_read(folder / SIGNATURE_FILE))

    @property
    def file(self) -> Path | None:
        """The store file (``None`` in memory)."""
        return None if self.folder is None else self.folder / SIGNATURE_FILE

    def __len__(self) -> int:
        """Signatures known."""
        return len(self._entries)

    def get(self, digest: str) -> SignatureArray | None:
        """The signature stored for ``digest`` (counted as reused), or ``None``."""
        with self._lock:
            found = self._entries.get(digest)
            if found is not None and digest not in self._added:
                self.reused += 1
            return found

    def put(self, digest: str, value: SignatureArray) -> None:
        """Add a signature computed this run."""
        with self._lock:
            if digest not in self._entries:
                self.computed += 1
            self._entries[digest] = value
            self._added[digest] = value

    def stack(self, digests: Sequence[str]) -> SignatureArray:
        """The signatures of ``digests``, stacked ``(N, SIGNATURE_LENGTH)``.

        Raises:
            KeyError: For a digest without a signature.
        """
        if not digests:
            return np.zeros((0, SIGNATURE_LENGTH), dtype=np.uint8)
        return np.stack([self._entries[d] for d in digests])

    def save(self) -> Path | None:
        """Merge this run's signatures into the store file.

        Returns:
            The file, or ``None`` when there was nothing to write (or no folder).

        Raises:
            OSError: If the folder cannot be written (read-only data).
        """
        if self.folder is None or not self._added:
            return None
        file = self.folder / SIGNATURE_FILE
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(self.folder / f".{SIGNATURE_FILE}.lock"):
            merged = _read(file)  # what other runs wrote meanwhile
            with self._lock:
                merged.update(self._added)
                self._added.clear()
            keys = sorted(merged)
            digests = np.frombuffer(
                b"".join(bytes.fromhex(k) for k in keys), dtype=np.uint8
            ).reshape(len(keys), _DIGEST_BYTES)
            values = np.stack([merged[k] for k in keys])
            with atomic_path(file) as tmp:
                np.savez(tmp, digests=digests, signatures=values)
        return file


def _read(file: Path) -> dict[str, SignatureArray]:
    """A store file's entries; an absent, unreadable or foreign file is empty."""
    if not file.is_file():
        return {}
    try:
        with np.load(file, allow_pickle=False) as data:
            digests, values = data["digests"], data["signatures"]
    except (OSError, ValueError, KeyError):  # damaged: rebuilt on the next save
        return {}
    if (
        values.dtype != np.uint8
        or values.ndim != 2
        or values.shape[1] != SIGNATURE_LENGTH
        or digests.shape != (len(values), _DIGEST_BYTES)
    ):
        return {}
    return {d.tobytes().hex(): v for d, v in zip(digests, values, strict=True)}


def signatures_for(
    paths: Iterable[Path],
    cache: SignatureCache,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[Path, str], dict[Path, str]]:
    """Make sure every image has a signature in ``cache`` (decoding only new ones).

    Args:
        paths: Image files (duplicates handled once).
        cache: Where signatures are looked up and added.
        workers: Threads (default:
            :func:`~classifier_training.core.image_io.image_threads`).
        progress: Called with 1 after each image.

    Returns:
        The content digest of each readable image (its key in ``cache``), and
        what is wrong with each unreadable one.
    """
    unique = list(dict.fromkeys(paths))
    digests: dict[Path, str] = {}
    failures: dict[Path, str] = {}

    def work(path: Path) -> None:
        try:
            digest = content_digest(path)
            if cache.get(digest) is None:
                cache.put(digest, signature(np.asarray(load_image(path))))
            digests[path] = digest
        except Exception as error:  # reported per file by the caller
            failures[path] = f"{type(error).__name__}: {error}"
        if progress is not None:
            progress(1)

    with ThreadPoolExecutor(max_workers=workers or image_threads()) as pool:
        list(pool.map(work, unique))
    return {p: digests[p] for p in unique if p in digests}, failures
