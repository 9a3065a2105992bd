"""``JerseyNumberDataset``: samples from any reader, decoded and transformed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from loguru import logger
from PIL import Image
from torch.utils.data import Dataset

from classifier_training.core.groups import group_label
from classifier_training.core.image_io import load_image
from classifier_training.core.readers import DataError, Sample
from classifier_training.core.tracks import track_rows
from classifier_training.core.validation import BadImagePolicy
from classifier_training.data.transforms import ResizeToInput
from classifier_training.types import ClassificationSample

ImageLoader = Callable[[Path], Image.Image]
Transform = Callable[[Image.Image], object]


class DecodeAndResize:
    """Default image loader: decode to RGB, then the deterministic resize.

    The output of this stage is what the image cache stores, so caching never
    changes results.
    """

    def __init__(self, resize: ResizeToInput | None) -> None:
        """Create the loader.

        Args:
            resize: The resize stage, or ``None`` to keep the original size.
        """
        self.resize = resize

    def __call__(self, path: Path) -> Image.Image:
        """Load ``path`` as a resized RGB image."""
        image = load_image(path)
        return self.resize(image) if self.resize is not None else image


class JerseyNumberDataset(Dataset[ClassificationSample]):
    """Image classification dataset over annotated samples.

    Despite its name (it was written for jersey numbers, read from JSONL
    annotations) it serves any labelled images: one item per annotation row, so an
    image that appears in several rows yields several items.

    Args:
        samples: The rows, e.g. from :func:`classifier_training.data.read_split`.
        class_to_idx: Class name to index; every sample's label must be in it.
        transform: Applied to the loaded image; must return a tensor.
        loader: Turns a path into an image (default: decode + no resize).
        on_bad_image: When the loader fails (the file changed after the start-up
            check): ``error`` raises a ``DataError`` naming the row and file;
            ``skip`` serves the next loadable row instead, warns once per row and
            records the row in :attr:`skipped_count`. Only loading is guarded:
            an error in the transform is a bug and is raised as is.
        groups: The group (track) id of each row (``data.group_key``). When
            given, every item also carries ``groups`` (the index of its track in
            this split, tracks numbered in order of first appearance) and
            ``group_labels`` (the class index of its track's true label,
            :func:`~classifier_training.core.groups.group_label`), so the
            track-level metrics can be computed from the batches alone.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        class_to_idx: Mapping[str, int],
        transform: Transform | None = None,
        loader: ImageLoader | None = None,
        on_bad_image: BadImagePolicy = "error",
        groups: Sequence[str] | None = None,
    ) -> None:
        unknown = sorted({s.label for s in samples} - set(class_to_idx))
        if unknown:
            raise ValueError(f"labels not in class_to_idx: {unknown[:5]}")
        self.samples = list(samples)
        self.class_to_idx = dict(class_to_idx)
        self.targets = [self.class_to_idx[s.label] for s in self.samples]
        self.transform = transform
        self.loader: ImageLoader = loader or DecodeAndResize(None)
        self.on_bad_image = on_bad_image
        # One flag per row in shared memory: DataLoader workers mark the rows they
        # had to skip and the parent counts distinct rows, not failures per epoch.
        self.skipped = torch.zeros(len(self.samples), dtype=torch.bool)
        self.skipped.share_memory_()  # type: ignore[no-untyped-call]
        self.group_index: list[int] | None = None
        self.group_targets: list[int] | None = None
        if groups is not None:
            self._index_groups(groups)

    def _index_groups(self, groups: Sequence[str]) -> None:
        """Each row's track index and its track's true class index."""
        if len(groups) != len(self.samples):
            raise ValueError(f"{len(groups)} group ids for {len(self.samples)} rows")
        index = [0] * len(self.samples)
        targets = [0] * len(self.samples)
        for number, rows in enumerate(track_rows(groups).values()):
            truth = self.class_to_idx[group_label(self.samples[i].label for i in rows)]
            for i in rows:
                index[i], targets[i] = number, truth
        self.group_index, self.group_targets = index, targets

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.samples)

    @property
    def skipped_count(self) -> int:
        """Distinct rows skipped at load time so far (all workers)."""
        return int(self.skipped.sum())

    def _load(self, index: int) -> tuple[int, Image.Image]:
        """Row ``index``'s image, or the next loadable row's under ``skip``."""
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            sample = self.samples[current]
            try:
                return current, self.loader(sample.image)
            except Exception as error:  # decoder errors come in many types
                if self.on_bad_image == "error":
                    raise DataError(
                        f"{sample.where}: cannot load image {sample.image} "
                        f"({type(error).__name__}: {error}); set "
                        "data.on_bad_image=skip to skip unreadable images"
                    ) from error
                if not self.skipped[current]:
                    self.skipped[current] = True
                    logger.warning(
                        f"{sample.image}: cannot load image ({error}); skipped"
                    )
        raise DataError("no image of the dataset could be loaded")

    def __getitem__(self, index: int) -> ClassificationSample:
        """Load, transform and label row ``index``."""
        row, image = self._load(index)
        data = self.transform(image) if self.transform is not None else image
        item: ClassificationSample = {"images": data, "labels": self.targets[row]}  # type: ignore[typeddict-item]
        if self.group_index is not None and self.group_targets is not None:
            item["groups"] = self.group_index[row]
            item["group_labels"] = self.group_targets[row]
        return item

    def class_counts(self) -> Counter[int]:
        """Rows per class index."""
        return Counter(self.targets)
