"""``val/track_top1`` and ``test/track_top1``: accuracy of one answer per track.

The evaluation batches of a data set with ``data.group_key`` carry each row's
track index and its track's true class (:class:`~classifier_training.types.
ClassificationBatch`). :class:`TrackTop1` collects them with the rows'
probabilities; at the epoch's end torchmetrics gathers every process's rows (so a
track whose frames were split across processes is answered whole, as in one
process) and each track gets one answer from :func:`~classifier_training.core.
tracks.answer_tracks` with the default rule, as ``classifier-evaluate
--group-by`` gives it.

Probabilities: during training there is no temperature yet (it is fitted after
training), so the metric reads the plain softmax of the logits. With the default
rule (``logprob``) a track's answer does not depend on the temperature: the
legible frames are those whose most probable class is not ``""`` (unchanged by
a temperature), and the sum of log-probabilities renormalised over the numbers
ranks the numbers as the sum of their logits does. So ``val/track_top1`` is the
track top-1 the calibrated model scores; only the confidences (and so the
abstention thresholds of ``classifier-evaluate``) move with the temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from classifier_training.core.tracks import DEFAULT_RULE, AggregationRule, answer_tracks


class TrackTop1(Metric):
    """Share of tracks whose aggregated answer is their true label.

    Args:
        class_names: Class names in index order (``""`` marks illegible frames).
        rule: The aggregation rule.
        **kwargs: Options of :class:`torchmetrics.Metric` (``sync_on_compute``).
    """

    full_state_update = False
    higher_is_better = True
    rows: list[torch.Tensor]

    def __init__(
        self,
        class_names: Sequence[str],
        rule: AggregationRule = DEFAULT_RULE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.class_names = list(class_names)
        self.rule: AggregationRule = rule
        # One flat float state per batch, [track, truth, p_0 .. p_C-1] per row:
        # one gather per epoch, and a process without rows adds an empty tensor
        # of the same kind (torchmetrics' corner case for empty list states).
        self.add_state("rows", default=[], dist_reduce_fx="cat")

    def update(
        self, probs: torch.Tensor, groups: torch.Tensor, group_labels: torch.Tensor
    ) -> None:
        """Add a batch: ``N x C`` probabilities, track indices, tracks' classes."""
        table = torch.cat(
            [groups[:, None].to(probs), group_labels[:, None].to(probs), probs],
            dim=1,
        )
        self.rows.append(table.detach().float().flatten())

    def compute(self) -> torch.Tensor:
        """Track top-1 over every track seen (NaN when no row was)."""
        state = self.rows  # a list of batches; one tensor once synchronised
        if isinstance(state, list) and not state:
            return torch.tensor(float("nan"))
        flat = dim_zero_cat(state).double().cpu()
        table = flat.reshape(-1, len(self.class_names) + 2)
        if len(table) == 0:
            return torch.tensor(float("nan"))
        groups = [str(int(g)) for g in table[:, 0].tolist()]
        truths = table[:, 1].tolist()
        truth = {
            g: self.class_names[int(t)] for g, t in zip(groups, truths, strict=True)
        }
        answers = answer_tracks(
            table[:, 2:].numpy(), self.class_names, groups, self.rule
        )
        correct = sum(answers[g].label == truth[g] for g in answers)
        return torch.tensor(correct / len(answers), dtype=torch.float32)
