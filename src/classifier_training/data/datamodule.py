"""``ImageFolderDataModule``: splits, classes, class weights, sampler, loaders."""

from __future__ import annotations

from collections import Counter
from typing import Any

import lightning as L
import torch
from loguru import logger
from torch.utils.data import DataLoader, Sampler

from classifier_training.config import DataModuleConfig
from classifier_training.data.dataset import DecodeAndResize, JerseyNumberDataset
from classifier_training.data.readers import (
    DataError,
    ExcludedRows,
    Sample,
    build_class_to_idx,
    detect_layout,
    display_name,
    find_splits,
    read_split,
    split_known,
)
from classifier_training.data.sampler import TrackingWeightedRandomSampler
from classifier_training.data.transforms import (
    ResizeToInput,
    build_eval_transform,
    build_train_transform,
)


def inverse_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """Class weights ``N / (K * n_c)``: 1.0 for every class of a balanced set.

    Args:
        counts: Rows per class (all > 0).

    Returns:
        Float tensor of class weights whose row-weighted mean is 1.
    """
    counts = counts.to(torch.float64)
    return (counts.sum() / (len(counts) * counts)).to(torch.float32)


class ImageFolderDataModule(L.LightningDataModule):
    """Train/valid/test data from a folder, in the JSONL or class-per-folder layout.

    ``class_to_idx`` comes from the train split alone (sorted, so the empty label
    ``""`` is index 0 when present). Valid/test rows with labels unknown to train
    are excluded and reported. ``setup`` runs its work once, however often Lightning
    calls it.

    Args:
        config: The validated data config.
    """

    def __init__(self, config: DataModuleConfig) -> None:
        super().__init__()
        self.config = config
        self.class_to_idx: dict[str, int] = {}
        self.datasets: dict[str, JerseyNumberDataset] = {}
        self.excluded: dict[str, ExcludedRows] = {}
        self.layouts: dict[str, str] = {}
        self.train_sampler: TrackingWeightedRandomSampler | None = None
        self._is_set_up = False

    # -- derived facts -----------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of train classes."""
        self._require_setup()
        return len(self.class_to_idx)

    @property
    def class_names(self) -> list[str]:
        """Class names in index order (``""`` kept as is)."""
        self._require_setup()
        return sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)

    @property
    def idx_to_class(self) -> dict[int, str]:
        """Index to class name."""
        return dict(enumerate(self.class_names))

    @property
    def train_class_counts(self) -> torch.Tensor:
        """Rows per class in the train split."""
        counts = self.datasets["train"].class_counts()
        return torch.tensor(
            [counts[i] for i in range(self.num_classes)], dtype=torch.long
        )

    @property
    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency class weights from the train split (mean 1)."""
        return inverse_frequency_weights(self.train_class_counts)

    @property
    def has_test(self) -> bool:
        """Whether a non-empty test split exists."""
        self._require_setup()
        return "test" in self.datasets and len(self.datasets["test"]) > 0

    def _require_setup(self) -> None:
        if not self._is_set_up:
            raise RuntimeError("call ImageFolderDataModule.setup() first")

    # -- setup -------------------------------------------------------------------
    def _read(self, split: str) -> list[Sample]:
        split_dir = self.split_dirs[split]
        assert split_dir is not None
        self.layouts[split] = detect_layout(split_dir)
        return read_split(split_dir)

    def setup(self, stage: str | None = None) -> None:
        """Read the splits, build classes, datasets and the train sampler (once)."""
        if self._is_set_up:
            return
        root = self.config.data_root
        self.split_dirs = find_splits(root)
        if self.split_dirs["train"] is None:
            raise DataError(f"{root}: no train/ split folder")
        if self.split_dirs["valid"] is None:
            raise DataError(f"{root}: no valid/ (or val/) split folder")
        rows = {s: self._read(s) for s, d in self.split_dirs.items() if d is not None}
        if not rows["train"]:
            raise DataError(f"{self.split_dirs['train']}: train split has no samples")
        if not rows["valid"]:
            raise DataError(f"{self.split_dirs['valid']}: valid split has no samples")
        self.class_to_idx = build_class_to_idx(s.label for s in rows["train"])
        if len(self.class_to_idx) < 2:
            raise DataError(
                f"{self.split_dirs['train']}: need at least 2 classes, found "
                f"{[display_name(c) for c in self.class_to_idx]}"
            )
        for split in ("valid", "test"):
            if split in rows:
                rows[split], self.excluded[split] = split_known(
                    rows[split], self.class_to_idx
                )
                if self.excluded[split].count:
                    logger.warning(self.excluded[split].summary(split))
        self._check_images_exist(rows)
        resize = ResizeToInput(
            self.config.image_size, self.config.resize_mode, self.config.mean
        )
        loader = DecodeAndResize(resize)
        train_tf, eval_tf = (
            build_train_transform(self.config),
            build_eval_transform(self.config),
        )
        for split, samples in rows.items():
            transform = train_tf if split == "train" else eval_tf
            self.datasets[split] = JerseyNumberDataset(
                samples, self.class_to_idx, transform=transform, loader=loader
            )
        self._is_set_up = True
        self.train_sampler = self._build_sampler()

    @staticmethod
    def _check_images_exist(rows: dict[str, list[Sample]]) -> None:
        for samples in rows.values():
            for sample in samples:
                if not sample.image.is_file():
                    raise DataError(
                        f"{sample.where}: image file not found: {sample.image}"
                    )

    def _build_sampler(self) -> TrackingWeightedRandomSampler | None:
        sampler_cfg = self.config.sampler
        if sampler_cfg.mode == "disabled":
            return None
        if sampler_cfg.mode == "auto":
            per_class = 1.0 / self.train_class_counts.to(torch.float64)
        else:
            assert sampler_cfg.class_weights is not None
            unknown = sorted(set(sampler_cfg.class_weights) - set(self.class_to_idx))
            names = [display_name(c) for c in self.class_names]
            if unknown:
                raise DataError(
                    f"data.sampler.class_weights: unknown class name(s) {unknown}; "
                    f"train classes include {names[:20]}"
                )
            shares = torch.ones(self.num_classes, dtype=torch.float64)
            for name, weight in sampler_cfg.class_weights.items():
                shares[self.class_to_idx[name]] = weight
            per_class = shares / self.train_class_counts.to(torch.float64)
        targets = torch.as_tensor(self.datasets["train"].targets)
        weights = per_class[targets]
        num_samples = sampler_cfg.num_samples or len(targets)
        return TrackingWeightedRandomSampler(weights, num_samples=num_samples)

    # -- loaders -----------------------------------------------------------------
    def _loader(
        self, split: str, sampler: Sampler[int] | None, shuffle: bool
    ) -> DataLoader[Any]:
        workers = self.config.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.config.pin_memory and torch.cuda.is_available(),
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        """Training batches, drawn by the configured sampler."""
        self._require_setup()
        sampler = self.train_sampler
        return self._loader("train", sampler, shuffle=sampler is None)

    def val_dataloader(self) -> DataLoader[Any]:
        """Validation batches, in file order."""
        self._require_setup()
        return self._loader("valid", None, shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        """Test batches, in file order."""
        if not self.has_test:
            raise DataError(f"{self.config.data_root}: no test split")
        return self._loader("test", None, shuffle=False)

    def summary(self) -> dict[str, Any]:
        """Rows, classes and exclusions per split (for logs and ``metrics.json``)."""
        self._require_setup()
        return {
            "num_classes": self.num_classes,
            "splits": {
                split: {
                    "rows": len(ds),
                    "layout": self.layouts[split],
                    "classes_present": len(set(ds.targets)),
                }
                for split, ds in self.datasets.items()
            },
            "excluded_rows": {
                split: {"count": ex.count, "labels": ex.labels}
                for split, ex in self.excluded.items()
            },
            "class_counts": dict(
                Counter(
                    {
                        display_name(self.class_names[i]): n
                        for i, n in enumerate(self.train_class_counts.tolist())
                    }
                )
            ),
        }
