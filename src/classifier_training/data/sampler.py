"""Training samplers whose epochs are a function of ``(seed, epoch)``.

Every process of a distributed run builds the same sampler, so every rank
computes the *same* full epoch of draws and takes its own slice of it
(``draws[rank::world_size]``): the ranks' shares are disjoint and together they
are exactly the epoch's draws. Because an epoch depends on nothing but the seed
and the epoch number (which Lightning passes through :meth:`set_epoch` and keeps
in its checkpoints), a resumed run draws exactly what the uninterrupted run
would have drawn.

An epoch holds whole batches only (:func:`draws_per_rank`): each rank's share is
cut to a multiple of the batch size, as torchvision's references and timm drop
the incomplete last batch. A last batch of one image would stop BatchNorm, and
cutting in the sampler, not only in the ``DataLoader``, keeps one length for the
draws (and their record), the steps of the learning-rate schedule and every
rank's share. A share smaller than one batch is not cut to nothing: it is the
epoch's one batch (:attr:`EpochSampler.batch_size` says how large).

The samplers subclass ``DistributedSampler`` so that Lightning keeps them as
they are instead of wrapping them in its own distributed sampler.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler

from classifier_training.config import ConfigError, SamplerConfig
from classifier_training.core.readers import DataError, display_name


def draws_per_rank(num_draws: int, num_replicas: int, batch_size: int) -> int:
    """Draws each rank trains on per epoch: its share, in whole batches.

    Args:
        num_draws: Draws the epoch asks for (all ranks together).
        num_replicas: Number of processes (world size).
        batch_size: Images per batch and rank.

    Returns:
        ``ceil(num_draws / num_replicas)`` rounded down to a multiple of
        ``batch_size``; the whole share when it is less than one batch (the
        epoch is then a single, smaller batch).
    """
    share = -(-num_draws // num_replicas)
    return share if share < batch_size else share // batch_size * batch_size


class EpochSampler(DistributedSampler[int]):
    """A sampler whose epoch is drawn from ``(seed, epoch)`` and split across ranks.

    An epoch has :attr:`total_size` draws, :attr:`num_samples` per rank (whole
    batches, :func:`draws_per_rank`); rank ``r`` of ``R`` yields ``draws[r::R]``.
    Before :meth:`distribute` it is a single-process sampler with batches of one.

    Attributes:
        num_draws: Draws asked for per epoch (before cutting to whole batches).
        batch_size: Images per batch of this epoch: the batch size asked for,
            or the whole share of a rank when that is smaller. The training
            loader batches with it, so every batch is whole.
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
        self.batch_size = 1
        self.drawn_indices: list[int] = []
        self.rank_indices: list[int] = []
        self.distribute(1, 0)

    def distribute(self, num_replicas: int, rank: int, batch_size: int = 1) -> None:
        """Split the following epochs across ``num_replicas`` ranks; this is ``rank``.

        Args:
            num_replicas: Number of processes (world size).
            rank: This process's global rank.
            batch_size: Images per batch and rank: each rank's share is cut to
                whole batches.

        Raises:
            ValueError: If ``rank`` is out of range.
        """
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        per_rank = draws_per_rank(self.num_draws, num_replicas, batch_size)
        self.num_replicas, self.rank = num_replicas, rank
        self.batch_size = min(batch_size, per_rank)
        self.num_samples = per_rank
        self.total_size = per_rank * num_replicas

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
    """Every row at most once per epoch, in a new order (the plain shuffle).

    The epoch is the permutation's head, cut to whole batches per rank, so the
    rows left over change from epoch to epoch. When whole batches need more than
    the rows (a few ranks, a split that does not divide among them), the
    permutation is repeated from its head (as ``DistributedSampler`` pads).

    Args:
        num_rows: Rows of the train split.
        seed: The run's seed.
    """

    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """A permutation of the rows, cut or padded to :attr:`total_size`."""
        return shuffled_rows(self.num_draws, self.total_size, self.generator(epoch))


def shuffled_rows(num_rows: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of ``num_rows`` rows, cut to ``size`` or repeated up to it."""
    order = torch.randperm(num_rows, generator=generator)
    return order.repeat(-(-size // num_rows))[:size]


class TrackingWeightedRandomSampler(EpochSampler):
    """Weighted draws with replacement, recorded so callbacks can check them.

    The epoch has :attr:`total_size` real weighted draws (``num_samples`` split
    among the ranks and cut to whole batches); callbacks compare the classes
    actually drawn with :meth:`expected_class_shares`.

    Args:
        weights: One non-negative weight per dataset row.
        num_samples: Draws asked for per epoch (before cutting to whole batches).
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

    def phase(self, epoch: int) -> str:
        """How ``epoch`` draws: ``weighted`` (or ``shuffle``, see subclasses)."""
        return "weighted"

    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """:attr:`total_size` rows drawn with replacement by weight."""
        return torch.multinomial(
            self.weights, self.total_size, True, generator=self.generator(epoch)
        )

    def expected_class_shares(
        self, targets: Sequence[int], num_classes: int
    ) -> torch.Tensor:
        """Expected fraction of draws per class in the current epoch.

        Args:
            targets: Class index of every dataset row.
            num_classes: Number of classes.

        Returns:
            Float tensor of length ``num_classes`` summing to 1.
        """
        weights = (
            self.weights
            if self.phase(self.epoch) == "weighted"
            else torch.ones_like(self.weights)
        )
        per_class = torch.zeros(num_classes, dtype=torch.float64)
        per_class.index_add_(0, torch.as_tensor(targets), weights)
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


class DeferredWeightedSampler(TrackingWeightedRandomSampler):
    """Plain shuffling first, weighted draws in the last ``defer_epochs`` epochs.

    Deferred re-sampling (Cao et al., NeurIPS 2019): the features are learnt on
    the data as it is, and only the last epochs re-balance the classifier. The
    switch epoch is known once the trainer's ``max_epochs`` is
    (:meth:`schedule`); an epoch still depends on ``(seed, epoch)`` only, so a
    resumed run draws what the uninterrupted one would, on either side of it.

    Args:
        weights: One non-negative weight per dataset row.
        num_samples: Draws per epoch, in both phases.
        defer_epochs: Epochs, at the end of the run, that draw by weight.
        seed: The run's seed.
    """

    def __init__(
        self,
        weights: Sequence[float] | torch.Tensor,
        num_samples: int,
        defer_epochs: int,
        seed: int = 0,
    ) -> None:
        super().__init__(weights, num_samples, seed=seed)
        self.defer_epochs = defer_epochs
        #: First epoch (0-based) that draws by weight; set by :meth:`schedule`.
        self.switch_epoch = 0

    def schedule(self, max_epochs: int | None) -> int:
        """Place the switch ``defer_epochs`` before the end of ``max_epochs``.

        Returns:
            The first weighted epoch.

        Raises:
            ConfigError: When the run has no epoch count to count back from.
        """
        if max_epochs is None or max_epochs < 1:
            raise ConfigError(
                f"data.sampler.defer_epochs={self.defer_epochs} counts back from "
                "the last epoch: set trainer.max_epochs"
            )
        self.switch_epoch = max(0, max_epochs - self.defer_epochs)
        return self.switch_epoch

    def phase(self, epoch: int) -> str:
        """``shuffle`` before the switch epoch, ``weighted`` from it on."""
        return "weighted" if epoch >= self.switch_epoch else "shuffle"

    def epoch_draws(self, epoch: int) -> torch.Tensor:
        """A plain shuffle of the rows before the switch, weighted draws after."""
        if self.phase(epoch) == "weighted":
            return super().epoch_draws(epoch)
        return shuffled_rows(len(self.weights), self.total_size, self.generator(epoch))


def build_draw_sampler(
    config: SamplerConfig,
    targets: Sequence[int],
    class_names: Sequence[str],
    seed: int,
) -> EpochSampler:
    """The sampler ``data.sampler`` asks for: a shuffle, or weighted draws.

    ``auto`` weighs each row by ``1 / rows of its class`` (every class drawn
    equally often); ``manual`` by ``class_weights[class] / rows of its class``
    (classes not listed weigh 1).

    Args:
        config: ``data.sampler``.
        targets: Class index of every train row.
        class_names: Class names by index.
        seed: The run's seed.

    Returns:
        A :class:`ShuffleSampler` (``disabled``), a
        :class:`DeferredWeightedSampler` (``defer_epochs``) or a
        :class:`TrackingWeightedRandomSampler`.

    Raises:
        DataError: If ``class_weights`` names a class train does not have.
    """
    if config.mode == "disabled":
        return ShuffleSampler(len(targets), seed)
    rows_by_class = torch.as_tensor(targets)
    counts = torch.bincount(rows_by_class, minlength=len(class_names))
    shares = torch.ones(len(class_names), dtype=torch.float64)
    if config.mode == "manual":
        assert config.class_weights is not None
        index = {name: i for i, name in enumerate(class_names)}
        unknown = sorted(set(config.class_weights) - set(index))
        if unknown:
            names = [display_name(c) for c in class_names]
            raise DataError(
                f"data.sampler.class_weights: unknown class name(s) {unknown}; "
                f"train classes include {names[:20]}"
            )
        for name, weight in config.class_weights.items():
            shares[index[name]] = weight
    per_class = shares / counts.to(torch.float64)
    num_samples = config.num_samples or len(targets)
    if config.defer_epochs:
        return DeferredWeightedSampler(
            per_class[rows_by_class], num_samples, config.defer_epochs, seed
        )
    return TrackingWeightedRandomSampler(
        per_class[rows_by_class], num_samples=num_samples, seed=seed
    )
