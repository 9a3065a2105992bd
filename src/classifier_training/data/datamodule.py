"""``ImageFolderDataModule``: the Lightning face of the data pipeline.

It wires one module per concern: validation and classes (:mod:`.splits`), the
decoded-image caches (:mod:`.split_caches`), the training draws (:mod:`.sampler`),
the loaders (:mod:`.loader_settings`) and the statistics (:mod:`.summary`); it
holds the deployment contract (saved in checkpoints) and runs the device
augmentation after the batch transfer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from loguru import logger
from torch.utils.data import DataLoader, default_collate

from classifier_training.config import DataModuleConfig
from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    DeploymentContract,
    parse_contract,
)
from classifier_training.core.groups import group_of
from classifier_training.core.readers import DataError, ExcludedRows, Sample
from classifier_training.data.cache import ImageCache
from classifier_training.data.dataset import (
    DecodeAndResize,
    ImageLoader,
    JerseyNumberDataset,
)
from classifier_training.data.device_transforms import (
    DeviceAugmentation,
    resolve_augment_on,
)
from classifier_training.data.loader_settings import build_loader, eval_sampler
from classifier_training.data.sampler import (
    EpochSampler,
    TrackingWeightedRandomSampler,
    build_draw_sampler,
)
from classifier_training.data.split_caches import cache_splits
from classifier_training.data.splits import (
    ClassedSplits,
    SplitRows,
    assign_classes,
    leave_out_listed,
    read_splits,
    report_group_coverage,
)
from classifier_training.data.summary import data_summary, skipped_image_counts
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


def place_augmentation(
    config: DataModuleConfig, accelerator: str
) -> tuple[str, DeviceAugmentation | None]:
    """Where train-time augmentation runs, and the device module when on the device.

    Args:
        config: The data config (``augment_on``, ``transforms``).
        accelerator: The ``trainer.accelerator`` setting.

    Returns:
        ``("workers", None)`` or ``("device", module)``.

    Raises:
        ConfigError: If ``augment_on=device`` asks for steps only the workers
            path has (raised by :class:`DeviceAugmentation`).
    """
    augment_on = resolve_augment_on(
        config.augment_on, accelerator, config.image_size, config.transforms
    )
    if augment_on != "device":
        return augment_on, None
    return augment_on, DeviceAugmentation(
        config.transforms,
        config.mean,
        config.std,
        config.image_size,
        compile=config.compile_augmentation,
    )


class ImageFolderDataModule(L.LightningDataModule):
    """Train/valid/test data from a folder, in the JSONL or class-per-folder layout.

    The classes come from the train split alone (sorted, so the empty label ``""``
    is index 0 when present). Valid/test rows with labels unknown to train are
    excluded and reported. ``setup`` runs its work once, however often Lightning
    calls it.

    After ``setup`` it exposes the run's :attr:`contract` (classes, input size,
    resize mode, normalisation, architecture), which Lightning stores in every
    checkpoint through :meth:`state_dict`; it also serves the artifact callbacks
    through :class:`~classifier_training.types.TrainingData`.

    The train loader yields whole batches only: each rank's share of an epoch is
    cut to a multiple of ``data.batch_size``
    (:func:`~classifier_training.data.sampler.draws_per_rank`), so no batch is too
    small for BatchNorm, and the sampler's epoch, ``len(train_dataloader())`` and
    the learning-rate schedule's step count agree. A split smaller than one batch
    per process trains on one smaller batch per epoch (with a warning); one image
    per process is refused with one line.

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

    Attributes:
        split_dirs: Split name to folder (``None`` when absent).
        layouts: Split name to ``jsonl`` or ``folder``.
        datasets: The dataset of each split.
        excluded: Per valid/test split, the rows left out (labels train lacks).
        caches: The image cache of each split (``data.cache``).
        loaders: The image loader serving each cached split.
        skipped_at_startup: Rows per split left out for unreadable images.
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
        self.augment_on, self.device_augmentation = place_augmentation(
            config, accelerator
        )
        # Filled by setup().
        self.split_dirs: dict[str, Path | None] = {}
        self.layouts: dict[str, str] = {}
        self.datasets: dict[str, JerseyNumberDataset] = {}
        self.excluded: dict[str, ExcludedRows] = {}
        self.caches: dict[str, ImageCache] = {}
        self.loaders: dict[str, ImageLoader] = {}
        self.skipped_at_startup: dict[str, int] = {}
        self._contract: DeploymentContract | None = None
        self._restored_contract: DeploymentContract | None = None
        self._draw_sampler: EpochSampler | None = None

    # -- derived facts -----------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names in index order (``""`` kept as is)."""
        return list(self.contract.class_names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to index."""
        return self.contract.class_to_idx

    @property
    def num_classes(self) -> int:
        """Number of train classes."""
        return self.contract.num_classes

    @property
    def idx_to_class(self) -> dict[int, str]:
        """Index to class name."""
        return self.contract.idx_to_class

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
        if self._contract is None:
            raise RuntimeError("call ImageFolderDataModule.setup() first")

    # -- setup -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Validate the data, build classes, caches, datasets and sampler (once).

        Raises:
            DataError: With one line per problem found (every problem at once).
        """
        if self._contract is not None:
            return
        config = self.config
        found = read_splits(config.data_root, config.on_bad_image)
        self.split_dirs, self.layouts = found.split_dirs, found.layouts
        if config.group_key is not None:
            report_group_coverage(found, config.group_key)
        resize = ResizeToInput(config.image_size, config.resize_mode, config.mean)
        decode: ImageLoader = DecodeAndResize(resize)
        rows = self._cached_rows(found.rows, found.skipped, resize, decode)
        if config.exclude_rows is not None:
            rows = leave_out_listed(rows, found, config.exclude_rows, config.data_root)
        classed = assign_classes(rows, self.split_dirs["train"])
        self.excluded = classed.excluded
        self.datasets = self._build_datasets(classed, decode)
        contract = DeploymentContract(
            arch=self.arch,
            class_names=classed.class_names,
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            mean=config.mean,
            std=config.std,
        )
        self._check_restored_contract(contract)
        self._draw_sampler = build_draw_sampler(
            config.sampler,
            self.datasets["train"].targets,
            contract.class_names,
            self.seed,
        )
        self._contract = contract

    @property
    def group_key(self) -> str | None:
        """``data.group_key``: the metadata field naming each row's track."""
        return self.config.group_key

    def groups(self, split: str) -> list[str]:
        """The group id of each row of ``split``, in loader order.

        Rows share an id when they share ``data.group_key``'s value; without a
        group key (or a value) every row is its own group
        (:func:`~classifier_training.core.groups.group_of`).
        """
        return [group_of(s, self.config.group_key) for s in self.split_samples(split)]

    def _cached_rows(
        self,
        rows: SplitRows,
        skipped: dict[str, int],
        resize: ResizeToInput,
        decode: ImageLoader,
    ) -> SplitRows:
        """The rows to train on: all of ``rows``, or those the caches could decode."""
        self.skipped_at_startup = dict(skipped)
        if self.config.cache != "none":
            cached = cache_splits(
                rows, self.config, resize, decode, self.processes_per_machine
            )
            self.caches, self.loaders, rows = cached.caches, cached.loaders, cached.rows
            self.skipped_at_startup = {
                split: count + cached.skipped.get(split, 0)
                for split, count in skipped.items()
            }
        total = sum(self.skipped_at_startup.values())
        if total:
            logger.warning(
                f"data.on_bad_image=skip: left out {total} row(s) with "
                f"unreadable images {self.skipped_at_startup}"
            )
        return rows

    def _build_datasets(
        self, classed: ClassedSplits, decode: ImageLoader
    ) -> dict[str, JerseyNumberDataset]:
        """One dataset per split: the train pipeline for train, eval for the rest."""
        config = self.config
        train_tf = (
            build_uint8_transform()
            if self.augment_on == "device"
            else build_train_transform(config)
        )
        eval_tf = build_eval_transform(config)
        logger.info(f"data.augment_on={config.augment_on}: on {self.augment_on}")
        key = config.group_key
        return {
            split: JerseyNumberDataset(
                samples,
                classed.class_to_idx,
                transform=train_tf if split == "train" else eval_tf,
                loader=self.loaders.get(split, decode),
                on_bad_image=config.on_bad_image,
                # Evaluation batches carry each row's track (val/track_top1).
                groups=(
                    [group_of(s, key) for s in samples]
                    if key is not None and split != "train"
                    else None
                ),
            )
            for split, samples in classed.rows.items()
        }

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
            if self._draw_sampler is not None:
                self._draw_sampler.seed = saved_seed
        if CHECKPOINT_STATE_KEY in state_dict:
            self._restored_contract = parse_contract(
                state_dict[CHECKPOINT_STATE_KEY], "the resumed checkpoint"
            )
            if self._contract is not None:
                self._check_restored_contract(self._contract)

    def _check_restored_contract(self, current: DeploymentContract) -> None:
        restored = self._restored_contract
        if restored is None:
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

    def preview_batch(self, indices: list[int]) -> ClassificationBatch:
        """Train rows ``indices`` through the training pipeline, for the preview.

        A fresh random draw each call: the augmentation preview shows here the
        batches training sees, so a pipeline that augments elsewhere (e.g. on the
        device) must do it here too.

        Returns:
            The collated batch (normalised images, class indices).
        """
        self._require_setup()
        dataset = self.datasets["train"]
        batch: ClassificationBatch = default_collate([dataset[i] for i in indices])
        if self.device_augmentation is not None:
            batch["images"] = self.device_augmentation(batch["images"], augment=True)
        return batch

    # -- training draws, distributed across processes (DDP) ------------------------
    @property
    def draw_sampler(self) -> EpochSampler:
        """The sampler that draws the training epochs (weighted or plain shuffle)."""
        self._require_setup()
        assert self._draw_sampler is not None
        return self._draw_sampler

    @property
    def train_sampler(self) -> TrackingWeightedRandomSampler | None:
        """The weighted sampler (``None`` when ``data.sampler.mode=disabled``)."""
        sampler = self._draw_sampler
        return sampler if isinstance(sampler, TrackingWeightedRandomSampler) else None

    def _world(self) -> tuple[int, int]:
        """``(world_size, global_rank)`` of the attached trainer (``(1, 0)`` alone)."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _epoch_source(self, draws: int) -> str:
        """What sets the number of draws per epoch, for messages."""
        if self.train_sampler is not None and self.config.sampler.num_samples:
            return f"data.sampler.num_samples={draws}"
        return f"{self.split_dirs['train']} ({draws} train rows)"

    # -- loaders -----------------------------------------------------------------
    def train_dataloader(self) -> DataLoader[Any]:
        """Training batches: this rank's share of the epoch's draws, whole batches.

        A share smaller than ``data.batch_size`` is the epoch's one batch.

        Raises:
            DataError: If a process would draw one image per epoch (BatchNorm
                cannot train on a batch of one).
        """
        sampler = self.draw_sampler
        world, rank = self._world()
        sampler.distribute(world, rank, self.config.batch_size)
        source = self._epoch_source(sampler.num_draws)
        if sampler.num_samples < 2:
            raise DataError(
                f"{source}: each of the {world} training process(es) would draw "
                "one image per epoch; BatchNorm needs batches of 2 at least: add "
                "rows or use fewer processes"
            )
        if sampler.batch_size < self.config.batch_size:
            logger.warning(
                f"{source}: each of the {world} training process(es) draws "
                f"{sampler.num_samples} images per epoch, less than one batch "
                f"(data.batch_size={self.config.batch_size}): it trains on one "
                f"batch of {sampler.batch_size} per epoch"
            )
        return build_loader(
            self.datasets["train"],
            self.config,
            self.accelerator,
            sampler,
            batch_size=sampler.batch_size,
            drop_last=True,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        """Validation batches, in file order."""
        self._require_setup()
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader[Any]:
        """Test batches, in file order."""
        if not self.has_test:
            raise DataError(f"{self.config.data_root}: no test split")
        return self._eval_loader("test")

    def _eval_loader(self, split: str) -> DataLoader[Any]:
        dataset = self.datasets[split]
        sampler = eval_sampler(dataset, *self._world())
        return build_loader(dataset, self.config, self.accelerator, sampler)

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

    # -- statistics --------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Rows, classes and exclusions per split (for logs and ``metrics.json``)."""
        return data_summary(
            self.class_names,
            self.datasets,
            self.layouts,
            self.excluded,
            self.caches,
            self.skipped_images(),
        )

    def skipped_images(self) -> dict[str, Any]:
        """Rows left out or replaced because their image was unreadable.

        ``at_startup`` counts rows dropped before training (``on_bad_image=skip``);
        ``at_load`` counts rows replaced when an image failed to load mid-run.
        """
        return skipped_image_counts(
            self.config.on_bad_image, self.skipped_at_startup, self.datasets
        )
