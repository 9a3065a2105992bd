"""The shared image cache: identical pixels, shared by workers, never stale."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from classifier_training.config import DataModuleConfig
from classifier_training.core.readers import DataError
from classifier_training.data.cache import (
    CachedLoader,
    ImageCache,
    build_cache,
    cache_bytes,
    choose_cache_kind,
)
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.dataset import DecodeAndResize
from classifier_training.data.split_caches import cache_splits
from classifier_training.data.splits import read_splits
from classifier_training.data.transforms import ResizeToInput
from tests.helpers import class_image


class Probe(Dataset[tuple[torch.Tensor, int]]):
    """Returns the loader's pixels and the worker's pid.

    With ``meet``, rows 0 and 1 wait for each other at a two-party barrier: both
    return only if two processes load them at the same time, so two workers take
    part in every pass, whatever the machine's load (a lone worker would time out).
    """

    def __init__(
        self, loader: CachedLoader, paths: list[Path], meet: Barrier | None = None
    ) -> None:
        self.loader = loader
        self.paths = paths
        self.meet = meet

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.meet is not None and index < 2:
            self.meet.wait(timeout=60)
        pixels = np.asarray(self.loader(self.paths[index]))
        return torch.from_numpy(pixels.copy()), os.getpid()


def make_images(folder: Path, count: int = 6, size: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}.jpg"
        class_image(i % 8, i, size).save(path, quality=90)
        paths.append(path)
    return paths


RESIZE = ResizeToInput(16, "letterbox", (0.5, 0.5, 0.5))
LOADER = DecodeAndResize(RESIZE)


def load_all(
    loader: DataLoader[tuple[torch.Tensor, int]],
) -> tuple[torch.Tensor, list[int]]:
    """All rows' pixels, and the pid of the process that loaded each row."""
    pixels: list[torch.Tensor] = []
    pids: list[int] = []
    for batch_pixels, batch_pids in loader:
        pixels.append(batch_pixels)
        pids.extend(batch_pids.tolist())
    return torch.cat(pixels), pids


@pytest.mark.parametrize("kind", ["ram", "disk"])
def test_cache_is_identical_and_shared_by_two_workers(
    tmp_path: Path, kind: str
) -> None:
    paths = make_images(tmp_path / "img")
    cache = build_cache(paths, LOADER, 16, kind, tmp_path / "cache")  # type: ignore[arg-type]
    uncached = torch.stack([torch.from_numpy(np.array(LOADER(p))) for p in paths])
    context = multiprocessing.get_context("fork")
    loader = DataLoader(
        Probe(CachedLoader(cache, LOADER), paths, context.Barrier(2)),
        batch_size=1,
        num_workers=2,
        persistent_workers=True,
        multiprocessing_context=context,
    )
    first, pids = load_all(loader)
    assert pids[0] != pids[1]  # rows 0 and 1 met at the barrier
    assert os.getpid() not in pids
    assert torch.equal(first, uncached)
    # Write through the parent's view after the workers started: they see it only
    # if they map the same memory (no per-worker copy).
    if kind == "ram":
        writable = cache.array
    else:
        assert cache.file is not None
        writable = np.load(cache.file, mmap_mode="r+")
    writable[0] = 7
    writable[1] = 9
    if kind == "disk":
        writable.flush()  # type: ignore[attr-defined]
    second, second_pids = load_all(loader)
    assert set(second_pids) == set(pids)  # the same two persistent workers
    assert second_pids[0] != second_pids[1]
    assert torch.all(second[0] == 7)
    assert torch.all(second[1] == 9)
    assert torch.equal(second[2:], uncached[2:])


def test_spawned_workers_share_the_ram_cache(tmp_path: Path) -> None:
    paths = make_images(tmp_path / "img", count=3)
    cache = build_cache(paths, LOADER, 16, "ram")
    assert cache.storage is not None
    assert cache.storage.is_shared()
    loader = DataLoader(
        Probe(CachedLoader(cache, LOADER), paths),
        batch_size=3,
        num_workers=1,
        multiprocessing_context="spawn",
    )
    pixels, _ = load_all(loader)
    assert torch.equal(pixels, torch.from_numpy(cache.array.copy()))


def test_disk_cache_is_reused_and_rebuilt_when_data_changes(tmp_path: Path) -> None:
    paths = make_images(tmp_path / "img", count=4)
    cache_dir = tmp_path / "cache"
    settings = {"resize_mode": "letterbox"}
    first = build_cache(paths, LOADER, 16, "disk", cache_dir, "train", settings)
    assert first.file is not None
    built_at = first.file.stat().st_mtime_ns
    again = build_cache(paths, LOADER, 16, "disk", cache_dir, "train", settings)
    assert again.file == first.file
    assert again.file.stat().st_mtime_ns == built_at  # reused, not rewritten
    # Same size, new content: the mtime moves, so the key does.
    Image.new("RGB", (40, 40), (1, 2, 3)).save(paths[1], quality=90)
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    rebuilt = build_cache(paths, LOADER, 16, "disk", cache_dir, "train", settings)
    assert rebuilt.file != first.file
    assert not first.file.exists()  # the stale cache is gone
    pixel = np.asarray(CachedLoader(rebuilt, LOADER)(paths[1]))[8, 8]
    assert tuple(pixel) == tuple(np.asarray(LOADER(paths[1]))[8, 8])
    assert abs(int(pixel[2]) - 3) <= 3
    other = build_cache(paths, LOADER, 16, "disk", cache_dir, "train", {"m": "x"})
    assert other.file != rebuilt.file  # settings are part of the key
    # Another dataset sharing the cache folder never deletes this one's cache.
    elsewhere = make_images(tmp_path / "other", count=3)
    build_cache(elsewhere, LOADER, 16, "disk", cache_dir, "train", settings)
    assert rebuilt.file is not None
    assert rebuilt.file.exists()


def test_cache_pickles_without_copying_the_memmap(tmp_path: Path) -> None:
    import pickle

    paths = make_images(tmp_path / "img", count=2)
    cache = build_cache(paths, LOADER, 16, "disk", tmp_path / "c")
    _ = cache.array
    restored: ImageCache = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < 2000
    assert isinstance(restored.array, np.memmap)
    np.testing.assert_array_equal(restored.array, cache.array)


def test_auto_choice() -> None:
    need = cache_bytes(1000, 64)
    assert need == 1000 * 64 * 64 * 3
    assert choose_cache_kind(1000, 64, available=4 * need) == "ram"
    assert choose_cache_kind(1000, 64, available=need) == "disk"
    assert choose_cache_kind(10, 16) == "ram"  # measured: tiny sets fit


@pytest.mark.parametrize("mode", ["ram", "disk", "auto"])
def test_datamodule_cache_matches_uncached_before_augmentation(
    jsonl_root: Path, mode: str
) -> None:
    def make(cache: str) -> ImageFolderDataModule:
        config = DataModuleConfig(
            data_root=jsonl_root,
            image_size=16,
            num_workers=0,
            cache=cache,  # type: ignore[arg-type]
        )
        dm = ImageFolderDataModule(config, arch="resnet18")
        dm.setup()
        return dm

    plain, cached = make("none"), make(mode)
    assert set(cached.caches) == {"train", "val", "test"}
    expected_kind = "ram" if mode == "auto" else mode
    assert cached.summary()["cache"]["train"]["kind"] == expected_kind
    for split in ("train", "val", "test"):
        a, b = plain.datasets[split], cached.datasets[split]
        for i in range(len(a)):
            left = np.asarray(a.loader(a.samples[i].image))
            right = np.asarray(b.loader(b.samples[i].image))
            np.testing.assert_array_equal(left, right)
        # Same seed, same random augmentation (train): identical tensors.
        torch.manual_seed(3)
        plain_item = a[0]["images"]
        torch.manual_seed(3)
        assert torch.equal(plain_item, b[0]["images"])
    valid_a = next(iter(plain.val_dataloader()))["images"]
    valid_b = next(iter(cached.val_dataloader()))["images"]
    assert torch.equal(valid_a, valid_b)
    # Built once per run, however often Lightning calls setup().
    caches = dict(cached.caches)
    cached.setup("fit")
    cached.setup("validate")
    assert cached.caches == caches
    if mode == "disk":
        assert (jsonl_root / ".cache").is_dir()


def test_augmentation_stays_random_with_cache(jsonl_root: Path) -> None:
    config = DataModuleConfig(
        data_root=jsonl_root, image_size=16, cache="ram", augment_on="workers"
    )
    dm = ImageFolderDataModule(config, arch="resnet18")
    dm.setup()
    train = dm.datasets["train"]
    assert not torch.equal(train[0]["images"], train[0]["images"])


def test_cache_build_finds_truncated_images(jsonl_root: Path) -> None:
    # A PNG cut where the tail check cannot see it (IEND kept) fails the full
    # decode done while caching.
    image = jsonl_root / "train" / "images" / "c1_1.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(image)
    data = image.read_bytes()
    image.write_bytes(data[:200] + data[-12:])
    config = DataModuleConfig(data_root=jsonl_root, image_size=16, cache="ram")
    with pytest.raises(DataError, match=r"annotations.jsonl:8: cannot decode image"):
        ImageFolderDataModule(config, arch="resnet18").setup()
    skip = config.model_copy(update={"on_bad_image": "skip"})
    dm = ImageFolderDataModule(skip, arch="resnet18")
    dm.setup()
    assert dm.summary()["skipped_images"]["at_startup"] == {"train": 1}
    assert len(dm.datasets["train"]) == 17


def test_caching_returns_the_rows_it_keeps_and_leaves_its_input(
    jsonl_root: Path,
) -> None:
    """The header pass leaves out an empty file, the cache build a truncated one:
    the build returns its rows and counts, and the data module adds both up."""
    truncated = jsonl_root / "train" / "images" / "c1_1.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(truncated)
    data = truncated.read_bytes()
    truncated.write_bytes(data[:200] + data[-12:])
    (jsonl_root / "valid" / "images" / "c0_0.png").write_bytes(b"")
    config = DataModuleConfig(
        data_root=jsonl_root, image_size=16, cache="ram", on_bad_image="skip"
    )
    found = read_splits(config.data_root, config.on_bad_image)
    assert found.skipped == {"train": 0, "val": 1, "test": 0}
    given = {split: list(rows) for split, rows in found.rows.items()}
    resize = ResizeToInput(16, config.resize_mode, config.mean)
    cached = cache_splits(found.rows, config, resize, DecodeAndResize(resize))
    assert found.rows == given  # not edited in place
    assert cached.skipped == {"train": 1, "val": 0, "test": 0}
    assert [s.image for s in given["train"] if s not in cached.rows["train"]] == [
        truncated
    ]
    assert cached.rows["val"] == given["val"]
    dm = ImageFolderDataModule(config, arch="resnet18")
    dm.setup()
    assert dm.skipped_at_startup == {"train": 1, "val": 1, "test": 0}
    assert dm.summary()["skipped_images"]["total"] == 2
