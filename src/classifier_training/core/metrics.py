"""The top-k rule shared by training metrics, evaluation and prediction."""

from __future__ import annotations

#: The ``k`` of the reported top-k accuracy (``acc_top5``), before capping.
TOP_K = 5


def cap_top_k(top_k: int, num_classes: int) -> int:
    """``top_k`` limited to ``1..num_classes`` (fewer classes than 5: top-5 is top-K).

    Args:
        top_k: The requested ``k``.
        num_classes: Number of classes.

    Returns:
        The ``k`` actually used.
    """
    return max(1, min(top_k, num_classes))
