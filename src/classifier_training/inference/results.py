"""The result of classifying one image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifier_training.core.readers import display_name


@dataclass(frozen=True, slots=True)
class ClassScore:
    """One entry of a top-k list.

    Attributes:
        label: Class name (``""`` is the empty label).
        class_id: Output index of the class.
        probability: Softmax probability.
    """

    label: str
    class_id: int
    probability: float


@dataclass(frozen=True, slots=True)
class Prediction:
    """The prediction for one image.

    Attributes:
        label: Most probable class name (``""`` is the empty label).
        class_id: Its output index.
        confidence: Its softmax probability.
        top_k: The ``k`` most probable classes, most probable first.
        source: Where the image came from (a path), when known.
    """

    label: str
    class_id: int
    confidence: float
    top_k: list[ClassScore] = field(default_factory=list)
    source: str | None = None

    @property
    def display_label(self) -> str:
        """The label for people (``<empty>`` for the empty label)."""
        return display_name(self.label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (raw labels, so ``""`` stays ``""``)."""
        return {
            "path": self.source,
            "label": self.label,
            "class_id": self.class_id,
            "confidence": self.confidence,
            "top_k": [
                {"label": s.label, "class_id": s.class_id, "probability": s.probability}
                for s in self.top_k
            ],
        }
