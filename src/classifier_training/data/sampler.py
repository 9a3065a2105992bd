"""Training samplers whose epochs are a function of ``(seed, epoch)``.

Every process of a distributed run builds the same sampler, so every rank
computes the *same* full epoch of draws and takes its own slice of it
(``draws[rank::world_size]``): the ranks' shares are disjoint and together they
are exactly the epoch's draws. Because an epoch depends on nothing but the seed
and the epoch number (which Lightning passes through :meth:`set_epoch` and keeps
in its checkpoints), a resumed run draws exactly what the uninterrupted run
would have drawn.

The samplers subclass ``DistributedSampler`` so that Lightning keeps them as
they are instead of wrapping them in its own distributed sampler.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler


class EpochSampler(DistributedSampler[int]):
    """A sampler whose epoch is drawn from ``(seed, epoch)`` and split across ranks.

    An epoch has :attr:`total_size` draws, a multiple of the number of ranks;
    rank ``r`` of ``R`` yields ``draws[r::R]``. Before :meth:`distribute` it is a
    single-process sampler (one rank).

    Attributes:
        drawn_indices: The whole current (or last) epoch, all ranks' draws.
        rank_indices: This rank's share of it, in the order it was yielded.
    """

    def __init__(self, num_draws: int, seed: int = 0) -> None:
        if num_draws < 1:
            raise ValueError(f"a sampler needs at least one draw, got {num_draws}")
        # ``range`` stands in for the dataset: only its length is read.
        super().__init__(
            range(num_draws),  # type: ignore[arg-type]
            num_replicas=1,
            rank=0,
            shuffle=False,
            seed=seed,
        )
        self.num_draws = num_draws
        self.drawn_indices: list[int] = []
        self.rank_indices: list[int] = []
        self.distribute(1, 0)

    def distribute(self, num_replicas: int, rank: int) -> None:
        """Split the following epochs across ``num_replicas`` ranks; this is ``rank``.

        Args:
            num_replicas: Number of processes (world size).
            rank: This process's global rank.
        """
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.num_replicas, self.rank = num_replicas, rank
        self.num_samples = -(-self.num_draws // num_replicas)  # per rank
        self.total_size = self.num_samples * num_replicas

    def generator(self, epoch: int) -> torch.Generator:
        """The random generator of ``epoch`` (the same in every process)."""
        return torch.Generator().manual_seed(
            int(self.seed) * 1_000_003 + int(epoch) + 1
        )

    @abstractmethod
    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """All :attr:`total_size` indices of ``epoch``, every rank's included."""

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's share of the current epoch, recording the whole epoch."""
        draws = self.epoch_draws(self.epoch)
        assert len(draws) == self.total_size
        self.drawn_indices = draws.tolist()
        self.rank_indices = self.drawn_indices[self.rank :: self.num_replicas]
        return iter(self.rank_indices)

    def __len__(self) -> int:
        """Draws per rank and epoch."""
        return self.num_samples

    def epoch_digest(self) -> str:
        """Short SHA-256 of the current epoch's draws (to compare runs cheaply)."""
        data = ",".join(map(str, self.drawn_indices)).encode()
        return hashlib.sha256(data).hexdigest()[:16]


class ShuffleSampler(EpochSampler):
    """Every row once per epoch in a new order (the plain shuffle).

    When the rows do not divide among the ranks, the epoch is padded with its
    first draws (as ``DistributedSampler`` does), so a few rows are seen twice;
    every rank then takes the same number of steps, which DDP requires.

    Args:
        num_rows: Rows of the train split.
        seed: The run's seed.
    """

    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """A permutation of the rows, padded with its head to :attr:`total_size`."""
        order = torch.randperm(self.num_draws, generator=self.generator(epoch))
        padding = self.total_size - self.num_draws
        return torch.cat([order, order[:padding]]) if padding else order


class TrackingWeightedRandomSampler(EpochSampler):
    """Weighted draws with replacement, recorded so callbacks can check them.

    Under ``R`` ranks the epoch is rounded up to a multiple of ``R`` draws (all of
    them real weighted draws, no padding). Callbacks compare the classes actually
    drawn with :meth:`expected_class_shares`.

    Args:
        weights: One non-negative weight per dataset row.
        num_samples: Draws per epoch (before rounding up to the ranks).
        seed: The run's seed.
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        num_samples: int,
        seed: int = 0,
    ) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.weights.ndim != 1 or not bool((self.weights >= 0).all()):
            raise ValueError("sampler weights must be one non-negative value per row")
        if float(self.weights.sum()) <= 0:
            raise ValueError("sampler weights must not all be zero")
        super().__init__(num_samples, seed=seed)

    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """:attr:`total_size` rows drawn with replacement by weight."""
        return torch.multinomial(
            self.weights, self.total_size, True, generator=self.generator(epoch)
        )

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
        per_class.index_add_(0, torch.as_tensor(targets), self.weights)
        return per_class / per_class.sum()

    def drawn_class_counts(
        self, targets: Sequence[int], num_classes: int
    ) -> torch.Tensor:
        """Classes of the indices drawn in the current (or last) epoch, all ranks.

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
