"""``TrackingWeightedRandomSampler``: a weighted sampler that remembers its draws."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import WeightedRandomSampler


class TrackingWeightedRandomSampler(WeightedRandomSampler):
    """``WeightedRandomSampler`` that records the indices drawn in each epoch.

    The sampler runs in the main process (workers only receive indices), so the
    record is complete whatever ``num_workers`` is. Callbacks compare the classes
    actually drawn with :meth:`expected_class_shares`.

    Args:
        weights: One non-negative weight per dataset row.
        num_samples: Draws per epoch.
        replacement: Draw with replacement (the usual choice for rebalancing).
        generator: Optional RNG for reproducible draws.
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        num_samples: int,
        replacement: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            weights,  # type: ignore[arg-type]  # tensors work; the stub is narrow
            num_samples,
            replacement=replacement,
            generator=generator,
        )
        self.drawn_indices: list[int] = []
        self.epochs_drawn = 0

    def __iter__(self) -> Iterator[int]:
        """Draw a new epoch of indices, recording them as they are yielded."""
        self.drawn_indices = []
        self.epochs_drawn += 1
        for index in super().__iter__():
            self.drawn_indices.append(index)
            yield index

    def expected_class_shares(
        self, targets: Sequence[int], num_classes: int
    ) -> torch.Tensor:
        """Expected fraction of draws per class under the weights.

        Args:
            targets: Class index of every dataset row.
            num_classes: Number of classes.

        Returns:
            Float tensor of length ``num_classes`` summing to 1.
        """
        per_class = torch.zeros(num_classes, dtype=torch.float64)
        per_class.index_add_(
            0, torch.as_tensor(targets), self.weights.to(torch.float64)
        )
        return per_class / per_class.sum()

    def drawn_class_counts(
        self, targets: Sequence[int], num_classes: int
    ) -> torch.Tensor:
        """Classes of the indices drawn in the current (or last) epoch.

        Args:
            targets: Class index of every dataset row.
            num_classes: Number of classes.

        Returns:
            Long tensor of draw counts per class.
        """
        classes = torch.as_tensor(targets)[
            torch.as_tensor(self.drawn_indices, dtype=torch.long)
        ]
        return torch.bincount(classes, minlength=num_classes)
