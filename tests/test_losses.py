"""Long-tail losses (``models.losses``) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from classifier_training.models.losses import (
    ClassificationLoss,
    ldam_margins,
    log_priors,
)

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]])
TARGETS = torch.tensor([0, 2])
COUNTS = torch.tensor([80, 15, 5])


def hand_ce(logits: list[list[float]], targets: list[int]) -> float:
    """Mean cross-entropy written out."""
    total = 0.0
    for row, target in zip(logits, targets, strict=True):
        total += math.log(sum(math.exp(v) for v in row)) - row[target]
    return total / len(targets)


def test_logit_adjusted_adds_tau_log_prior() -> None:
    loss = ClassificationLoss("logit_adjusted", COUNTS, logit_adjust_tau=0.5)
    prior = [math.log(c / 100) for c in (80, 15, 5)]
    adjusted = [
        [z + 0.5 * p for z, p in zip(r, prior, strict=True)] for r in LOGITS.tolist()
    ]
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(hand_ce(adjusted, [0, 2]))


def test_logit_adjustment_with_uniform_priors_is_plain_cross_entropy() -> None:
    uniform = ClassificationLoss("logit_adjusted", torch.tensor([7, 7, 7]))
    plain = ClassificationLoss("cross_entropy")
    assert float(uniform(LOGITS, TARGETS)) == pytest.approx(
        float(plain(LOGITS, TARGETS))
    )
    assert float(plain(LOGITS, TARGETS)) == pytest.approx(
        hand_ce(LOGITS.tolist(), [0, 2])
    )


def test_balanced_softmax_gradient_matches_its_closed_form() -> None:
    # d/dz_j of -log(n_y e^{z_y} / sum_k n_k e^{z_k}) = q_j - [j == y], with
    # q = softmax(z + log n): the counts reweight the softmax, not the target.
    loss = ClassificationLoss("balanced_softmax", COUNTS, logit_adjust_tau=0.3)
    logits = LOGITS.clone().requires_grad_(True)
    loss(logits, TARGETS).backward()
    q = torch.softmax(LOGITS + COUNTS.float().log(), dim=1)
    expected = (q - F.one_hot(TARGETS, 3).float()) / len(TARGETS)
    assert logits.grad is not None
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_ldam_lowers_the_true_logit_by_its_class_margin() -> None:
    loss = ClassificationLoss("ldam", COUNTS, ldam_max_margin=0.5, ldam_scale=2.0)
    margins = [c**-0.25 for c in (80, 15, 5)]
    margins = [0.5 * m / max(margins) for m in margins]
    assert ldam_margins(COUNTS, 0.5).tolist() == pytest.approx(margins)
    rows = LOGITS.tolist()
    shifted = [
        [2 * (z - (margins[t] if j == t else 0)) for j, z in enumerate(row)]
        for row, t in zip(rows, [0, 2], strict=True)
    ]
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(hand_ce(shifted, [0, 2]))


def test_soft_targets_and_smoothing_are_taken() -> None:
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    loss = ClassificationLoss("logit_adjusted", COUNTS, label_smoothing=0.1)
    adjusted = LOGITS + log_priors(COUNTS)
    assert float(loss(LOGITS, soft)) == pytest.approx(
        float(F.cross_entropy(adjusted, soft, label_smoothing=0.1))
    )
    ldam = ClassificationLoss("ldam", COUNTS)
    hard = F.one_hot(TARGETS, 3).float()
    assert float(ldam(LOGITS, hard)) == pytest.approx(float(ldam(LOGITS, TARGETS)))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="logit_adjust_tau must be >= 0"):
        ClassificationLoss("logit_adjusted", COUNTS, logit_adjust_tau=-1)
    with pytest.raises(ValueError, match="needs the train split's class counts"):
        ClassificationLoss("ldam")
    with pytest.raises(ValueError, match="every class needs a train row"):
        log_priors(torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="unknown loss 'focal'"):
        ClassificationLoss("focal")  # type: ignore[arg-type]
