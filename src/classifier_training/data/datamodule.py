"""``ImageFolderDataModule``: splits, classes, class weights, sampler, loaders."""

from __future__ import annotations

from collections import Counter
from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from loguru import logger
from torch.utils.data import DataLoader, Sampler, default_collate

from classifier_training.config import DataModuleConfig
from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    DeploymentContract,
    parse_contract,
)
from classifier_training.core.readers import (
    DataError,
    ExcludedRows,
    Sample,
    build_class_to_idx,
    display_name,
    split_known,
)
from classifier_training.core.validation import validate_dataset
from classifier_training.data.cache import (
    CachedLoader,
    CacheKind,
    ImageCache,
    build_cache,
    choose_cache_kind,
)
from classifier_training.data.dataset import (
    DecodeAndResize,
    ImageLoader,
    JerseyNumberDataset,
)
from classifier_training.data.device_transforms import (
    DeviceAugmentation,
    resolve_augment_on,
)
from classifier_training.data.loader_settings import effective_num_workers
from classifier_training.data.sampler import (
    EpochSampler,
    ShuffleSampler,
    TrackingWeightedRandomSampler,
)
from classifier_training.data.transforms import (
    ResizeToInput,
    build_eval_transform,
    build_train_transform,
    build_uint8_transform,
)
from classifier_training.types import ClassificationBatch

#: Key of the training draws' seed in the data module's checkpoint state.
SAMPLER_SEED_KEY = "sampler_seed"


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

    After ``setup`` it exposes the run's :attr:`contract` (classes, input size,
    resize mode, normalisation, architecture), which Lightning stores in every
    checkpoint through :meth:`state_dict`; it also serves the artifact callbacks
    through :class:`~classifier_training.types.TrainingData`.

    With ``data.augment_on=device`` the train loader yields ``uint8`` images and
    :meth:`on_after_batch_transfer` augments and normalises them on the training
    device (:class:`~classifier_training.data.device_transforms.DeviceAugmentation`).

    Args:
        config: The validated data config.
        arch: Name of the architecture trained on this data (``model.arch``);
            recorded in the contract so a checkpoint rebuilds its network alone.
        seed: Seed of the training draws: epoch ``e`` is drawn from
            ``(seed, e)``, identically in every process of a distributed run
            (each takes its own slice) and again after a resume.
        processes_per_machine: Processes of this machine that train together
            (DDP ranks per node). Above 1, ``data.cache=ram`` is built once per
            machine and mapped by all of them, and ``data.cache=disk`` is written
            by one process while the others wait.
        accelerator: The Trainer's accelerator setting (``trainer.accelerator``):
            decides ``augment_on=auto``, pinned memory and the worker count (0 on
            Apple silicon).
    """

    def __init__(
        self,
        config: DataModuleConfig,
        arch: str,
        seed: int = 0,
        processes_per_machine: int = 1,
        accelerator: str = "auto",
    ) -> None:
        super().__init__()
        self.config = config
        self.arch = arch
        self.seed = seed
        self.processes_per_machine = processes_per_machine
        self.accelerator = accelerator
        self.augment_on = resolve_augment_on(
            config.augment_on, accelerator, config.image_size, config.transforms
        )
        self.device_augmentation: DeviceAugmentation | None = (
            DeviceAugmentation(
                config.transforms,
                config.mean,
                config.std,
                config.image_size,
                compile=config.compile_augmentation,
            )
            if self.augment_on == "device"
            else None
        )
        self._contract: DeploymentContract | None = None
        self._restored_contract: DeploymentContract | None = None
        self.class_to_idx: dict[str, int] = {}
        self.datasets: dict[str, JerseyNumberDataset] = {}
        self.excluded: dict[str, ExcludedRows] = {}
        self.layouts: dict[str, str] = {}
        self.train_sampler: TrackingWeightedRandomSampler | None = None
        self._shuffle_sampler: ShuffleSampler | None = None
        self.caches: dict[str, ImageCache] = {}
        self.loaders: dict[str, ImageLoader] = {}
        self.skipped_at_startup: dict[str, int] = {}
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
    def setup(self, stage: str | None = None) -> None:
        """Validate the data, build classes, caches, datasets and sampler (once).

        Raises:
            DataError: With one line per problem found (every problem at once).
        """
        if self._is_set_up:
            return
        config = self.config
        report = validate_dataset(config.data_root, on_bad_image=config.on_bad_image)
        report.raise_for_errors()
        for problem in report.warnings:
            logger.warning(str(problem))
        self.split_dirs = report.split_dirs
        self.layouts = dict(report.layouts)
        rows = report.usable_rows()
        self.skipped_at_startup = report.skipped_rows()
        resize = ResizeToInput(config.image_size, config.resize_mode, config.mean)
        loader: ImageLoader = DecodeAndResize(resize)
        if config.cache != "none":
            rows = self._build_caches(rows, resize, loader)
        self.class_to_idx = build_class_to_idx(s.label for s in rows["train"])
        if len(self.class_to_idx) < 2:
            raise DataError(
                f"{self.split_dirs['train']}: need at least 2 classes, found "
                f"{[display_name(c) for c in self.class_to_idx]}"
            )
        for split in ("val", "test"):
            if split in rows:
                rows[split], self.excluded[split] = split_known(
                    rows[split], self.class_to_idx
                )
                if self.excluded[split].count:
                    logger.warning(self.excluded[split].summary(split))
        train_tf = (
            build_uint8_transform()
            if self.augment_on == "device"
            else build_train_transform(config)
        )
        eval_tf = build_eval_transform(config)
        logger.info(f"data.augment_on={config.augment_on}: on {self.augment_on}")
        for split, samples in rows.items():
            self.datasets[split] = JerseyNumberDataset(
                samples,
                self.class_to_idx,
                transform=train_tf if split == "train" else eval_tf,
                loader=self.loaders.get(split, loader),
                on_bad_image=config.on_bad_image,
            )
        skipped = sum(self.skipped_at_startup.values())
        if skipped:
            logger.warning(
                f"data.on_bad_image=skip: left out {skipped} row(s) with "
                f"unreadable images {self.skipped_at_startup}"
            )
        self._contract = DeploymentContract(
            arch=self.arch,
            class_names=tuple(
                sorted(self.class_to_idx, key=self.class_to_idx.__getitem__)
            ),
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            mean=config.mean,
            std=config.std,
        )
        self._check_restored_contract()
        self._is_set_up = True
        self.train_sampler = self._build_sampler()
        if self.train_sampler is None:
            self._shuffle_sampler = ShuffleSampler(
                len(self.datasets["train"]), self.seed
            )

    # -- deployment contract (saved in checkpoints) -------------------------------
    @property
    def contract(self) -> DeploymentContract:
        """What a deployment of a model trained on this data needs (after setup)."""
        self._require_setup()
        assert self._contract is not None
        return self._contract

    def state_dict(self) -> dict[str, Any]:
        """The contract, as plain JSON values, and the seed of the training draws
        (Lightning saves both in checkpoints; it keeps the epoch number itself)."""
        if self._contract is None:
            return {}
        return {
            CHECKPOINT_STATE_KEY: self._contract.to_json(),
            SAMPLER_SEED_KEY: self.seed,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """On resume: the checkpoint must have been trained on the same classes, and
        the draws continue from the checkpoint's seed (same order as uninterrupted).
        """
        saved_seed = state_dict.get(SAMPLER_SEED_KEY)
        if isinstance(saved_seed, int) and saved_seed != self.seed:
            logger.warning(
                f"resuming a run whose training draws were seeded with {saved_seed} "
                f"(seed={self.seed} now): keeping {saved_seed}, so the epochs draw "
                "what the interrupted run would have drawn"
            )
            self.seed = saved_seed
            for sampler in (self.train_sampler, self._shuffle_sampler):
                if sampler is not None:
                    sampler.seed = saved_seed
        if CHECKPOINT_STATE_KEY in state_dict:
            self._restored_contract = parse_contract(
                state_dict[CHECKPOINT_STATE_KEY], "the resumed checkpoint"
            )
            self._check_restored_contract()

    def _check_restored_contract(self) -> None:
        restored, current = self._restored_contract, self._contract
        if restored is None or current is None:
            return
        if restored.class_names != current.class_names:
            raise DataError(
                f"{self.config.data_root}: the resumed checkpoint was trained on "
                f"{restored.num_classes} classes {list(restored.class_names)[:8]}..., "
                f"this data has {current.num_classes} "
                f"{list(current.class_names)[:8]}...; resume on the same data"
            )
        if restored != current:
            logger.warning(
                "resuming with a changed deployment contract: "
                f"{restored.model_dump()} -> {current.model_dump()}"
            )

    # -- what the artifact callbacks read (types.TrainingData) --------------------
    def split_samples(self, split: str) -> list[Sample]:
        """Rows of ``split`` in loader order (empty when the split is absent)."""
        dataset = self.datasets.get(split)
        return list(dataset.samples) if dataset is not None else []

    def eval_images(self, split: str, count: int) -> torch.Tensor | None:
        """The first ``count`` images of ``split``, preprocessed as in evaluation.

        Returns:
            ``N x 3 x H x W`` float32 (``N <= count``), or ``None`` when empty.
        """
        dataset = self.datasets.get(split)
        if dataset is None or len(dataset) == 0 or split == "train":
            return None
        n = min(count, len(dataset))
        return torch.stack([dataset[i]["images"] for i in range(n)])

    def train_batch(self, indices: list[int]) -> ClassificationBatch:
        """Train rows ``indices`` through the training pipeline (a fresh draw).

        The augmentation preview reads the exact batches training sees here, so a
        pipeline that augments elsewhere (e.g. on the device) must do it here too.

        Returns:
            The collated batch (normalised images, class indices).
        """
        self._require_setup()
        dataset = self.datasets["train"]
        batch: ClassificationBatch = default_collate([dataset[i] for i in indices])
        if self.device_augmentation is not None:
            batch["images"] = self.device_augmentation(batch["images"], augment=True)
        return batch

    def _build_caches(
        self,
        rows: dict[str, list[Sample]],
        resize: ResizeToInput,
        loader: ImageLoader,
    ) -> dict[str, list[Sample]]:
        """Decode every image once into the shared cache (one per split).

        This is a full decode, so it also finds the truncated files the header
        pass cannot see: they stop the run (``error``) or are left out (``skip``).
        """
        config = self.config
        kind: CacheKind
        if config.cache == "auto":
            distinct = sum(len({s.image for s in r}) for r in rows.values())
            kind = choose_cache_kind(distinct, config.image_size)
        else:
            kind = config.cache  # type: ignore[assignment]
        cache_dir = config.cache_dir or config.data_root / ".cache"
        settings = {"resize_mode": resize.mode, "fill": list(resize.fill)}
        failed: list[str] = []
        for split, samples in rows.items():
            if not samples:
                continue
            try:
                cache = build_cache(
                    [s.image for s in samples],
                    loader,
                    config.image_size,
                    kind,
                    cache_dir=cache_dir,
                    name=split,
                    settings=settings,
                    shared_by=self.processes_per_machine,
                )
            except OSError as error:
                where = cache_dir if kind == "disk" else "data.cache=ram"
                raise DataError(
                    f"{where}: cannot build the {kind} image cache ({error}); "
                    "set data.cache_dir to a writable folder or data.cache=none"
                ) from None
            self.caches[split] = cache
            self.loaders[split] = CachedLoader(cache, loader)
            if cache.failures:
                bad = cache.failures
                failed += [
                    f"{s.where}: cannot decode image {s.image} ({bad[str(s.image)]})"
                    for s in samples
                    if str(s.image) in bad
                ]
                rows[split] = [s for s in samples if str(s.image) not in bad]
                self.skipped_at_startup[split] = self.skipped_at_startup.get(
                    split, 0
                ) + (len(samples) - len(rows[split]))
        if failed and config.on_bad_image == "error":
            raise DataError(
                f"{len(failed)} unreadable image row(s):\n" + "\n".join(failed)
            )
        for line in failed:
            logger.warning(f"{line}; skipped")
        return rows

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
        return TrackingWeightedRandomSampler(
            weights, num_samples=num_samples, seed=self.seed
        )

    # -- distribution across processes (DDP) -------------------------------------
    def _world(self) -> tuple[int, int]:
        """``(world_size, global_rank)`` of the attached trainer (``(1, 0)`` alone)."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    @property
    def draw_sampler(self) -> EpochSampler:
        """The sampler that draws the training epochs (weighted or plain shuffle)."""
        self._require_setup()
        sampler = self.train_sampler or self._shuffle_sampler
        assert sampler is not None
        return sampler

    def _eval_sampler(self, split: str) -> Sampler[int] | None:
        """File order; under DDP each rank takes a disjoint share, without padding.

        ``DistributedSampler`` would repeat rows to give every rank the same count,
        and the synchronised metrics would count those rows twice.
        """
        world, rank = self._world()
        if world == 1:
            return None
        return UnrepeatedDistributedSampler(
            self.datasets[split], num_replicas=world, rank=rank, shuffle=False
        )

    # -- loaders -----------------------------------------------------------------
    def _loader(
        self, split: str, sampler: Sampler[int] | None, shuffle: bool
    ) -> DataLoader[Any]:
        config = self.config
        workers = effective_num_workers(config.num_workers, self.accelerator)
        worker_settings: dict[str, Any] = {}
        if workers > 0:  # DataLoader refuses these without workers
            worker_settings["persistent_workers"] = config.persistent_workers
            if config.prefetch_factor is not None:
                worker_settings["prefetch_factor"] = config.prefetch_factor
        # Pinned pages only help a copy to a CUDA device.
        on_cpu = self.accelerator.strip().lower() == "cpu"
        return DataLoader(
            self.datasets[split],
            batch_size=config.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            pin_memory=config.pin_memory and not on_cpu and torch.cuda.is_available(),
            drop_last=False,
            **worker_settings,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``augment_on=device``: augment (train only) and normalise on the device.

        Only ``uint8`` batches are touched (the train loader's on that path);
        evaluation batches arrive normalised from the workers, exactly as the
        deployment preprocessing makes them.
        """
        images = batch["images"] if isinstance(batch, dict) else None
        if (
            self.device_augmentation is None
            or images is None
            or images.dtype != torch.uint8
        ):
            return batch
        module = self.device_augmentation.to(images.device)
        training = self.trainer is not None and self.trainer.training
        return {**batch, "images": module(images, augment=training)}

    def train_dataloader(self) -> DataLoader[Any]:
        """Training batches: this rank's share of the epoch's draws."""
        self._require_setup()
        sampler = self.draw_sampler
        sampler.distribute(*self._world())
        return self._loader("train", sampler, shuffle=False)

    def val_dataloader(self) -> DataLoader[Any]:
        """Validation batches, in file order."""
        self._require_setup()
        return self._loader("val", self._eval_sampler("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader[Any]:
        """Test batches, in file order."""
        if not self.has_test:
            raise DataError(f"{self.config.data_root}: no test split")
        return self._loader("test", self._eval_sampler("test"), shuffle=False)

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
            "skipped_images": self.skipped_images(),
            "cache": {
                split: {"kind": c.kind, "images": len(c), "bytes": c.nbytes}
                for split, c in self.caches.items()
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

    def skipped_images(self) -> dict[str, Any]:
        """Rows left out or replaced because their image was unreadable.

        ``at_startup`` counts rows dropped before training (``on_bad_image=skip``);
        ``at_load`` counts rows replaced when an image failed to load mid-run.
        """
        at_load = {
            split: ds.skipped_count
            for split, ds in self.datasets.items()
            if ds.skipped_count
        }
        total = sum(self.skipped_at_startup.values()) + sum(at_load.values())
        return {
            "policy": self.config.on_bad_image,
            "total": total,
            "at_startup": {k: v for k, v in self.skipped_at_startup.items() if v},
            "at_load": at_load,
        }
