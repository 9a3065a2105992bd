"""What every classifier shares: contract, preprocessing, batching, top-k."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from classifier_training.core.calibration import softmax
from classifier_training.core.contract import DeploymentContract
from classifier_training.core.errors import ClassifierError
from classifier_training.core.metrics import cap_top_k
from classifier_training.core.preprocessing import ImageInput, Preprocessor
from classifier_training.core.tracks import (
    DEFAULT_RULE,
    AggregationRule,
    TrackAnswer,
    aggregate_track,
    answer_tracks,
)
from classifier_training.inference.results import ClassScore, Prediction


class ModelLoadError(ClassifierError):
    """A model or its labels mapping cannot be used; the message names the file."""


class Classifier(ABC):
    """Common interface of :class:`ONNXClassifier` and :class:`CheckpointClassifier`.

    Subclasses implement :meth:`predict_logits` on preprocessed batches; everything
    else (decoding, resizing, normalising, batching, softmax, top-k) lives here.
    Confidences are calibrated: ``softmax(logits / contract.temperature)``.

    Args:
        contract: The model's deployment contract.
        source: Where the contract came from (a file), for messages.
    """

    def __init__(self, contract: DeploymentContract, source: Path) -> None:
        self.contract = contract
        self.mapping_path = source
        self.preprocessor = Preprocessor.from_contract(contract)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.contract.num_classes

    @property
    def class_names(self) -> list[str]:
        """Class names by output index."""
        return list(self.contract.class_names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to output index."""
        return self.contract.class_to_idx

    @property
    def image_size(self) -> int:
        """Side of the square network input."""
        return self.contract.image_size

    @abstractmethod
    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the network on a preprocessed ``N x 3 x H x W`` float32 batch.

        Args:
            batch: Normalised images.

        Returns:
            ``N x num_classes`` float32 logits.
        """

    @property
    def temperature(self) -> float:
        """The calibration temperature the logits are divided by (1.0: none)."""
        return self.contract.temperature

    def predict_proba(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Calibrated softmax probabilities (float64) for a preprocessed batch."""
        return softmax(self.predict_logits(batch), self.temperature)

    def _results(
        self, probs: npt.NDArray[Any], top_k: int, sources: Sequence[str | None]
    ) -> list[Prediction]:
        k = cap_top_k(top_k, self.num_classes)
        # Stable descending order: ties go to the lower class index, like argmax.
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        names = self.contract.class_names
        results = []
        for row, indices, source in zip(probs, order, sources, strict=True):
            scores = [ClassScore(names[i], int(i), float(row[i])) for i in indices]
            best = scores[0]
            results.append(
                Prediction(
                    label=best.label,
                    class_id=best.class_id,
                    confidence=best.probability,
                    top_k=scores,
                    source=source,
                )
            )
        return results

    def iter_predict(
        self, images: Sequence[ImageInput], top_k: int = 5, batch_size: int = 32
    ) -> Iterator[Prediction]:
        """Predict images lazily, ``batch_size`` at a time.

        Args:
            images: File paths or PIL images.
            top_k: Classes to keep per image (capped at the number of classes).
            batch_size: Images per network call.

        Yields:
            One prediction per image, in order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            probs = self.predict_proba(self.preprocessor.batch(chunk))
            sources = [None if not isinstance(i, str | Path) else str(i) for i in chunk]
            yield from self._results(probs, top_k, sources)

    @overload
    def predict(  # type: ignore[overload-overlap]  # a str is also a Sequence
        self, images: ImageInput, top_k: int = ..., batch_size: int = ...
    ) -> Prediction: ...

    @overload
    def predict(
        self, images: Sequence[ImageInput], top_k: int = ..., batch_size: int = ...
    ) -> list[Prediction]: ...

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        top_k: int = 5,
        batch_size: int = 32,
    ) -> Prediction | list[Prediction]:
        """Classify one image or a list of images.

        Args:
            images: A file path or PIL image, or a sequence of them.
            top_k: Classes to keep per image (capped at the number of classes).
            batch_size: Images per network call.

        Returns:
            A :class:`Prediction` for one image, a list for a sequence.
        """
        if isinstance(images, str | Path) or not isinstance(images, Sequence):
            return next(self.iter_predict([images], top_k, 1))
        return list(self.iter_predict(images, top_k, batch_size))

    def predict_batch(
        self, batch: npt.NDArray[Any], top_k: int = 5
    ) -> list[Prediction]:
        """Classify an already preprocessed ``N x 3 x H x W`` float32 batch."""
        return self._results(self.predict_proba(batch), top_k, [None] * len(batch))

    def probabilities(
        self, images: Sequence[ImageInput], batch_size: int = 32
    ) -> npt.NDArray[np.float64]:
        """Calibrated ``N x C`` probabilities of images, ``batch_size`` at a time.

        Args:
            images: File paths or PIL images.
            batch_size: Images per network call.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        table = np.zeros((len(images), self.num_classes), dtype=np.float64)
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            table[start : start + len(chunk)] = self.predict_proba(
                self.preprocessor.batch(chunk)
            )
        return table

    def predict_track(
        self,
        images: Sequence[ImageInput],
        rule: AggregationRule = DEFAULT_RULE,
        min_confidence: float = 0.0,
        batch_size: int = 32,
    ) -> TrackAnswer:
        """One answer for the crops of one player track.

        The crops' calibrated probabilities are aggregated by ``rule``
        (:mod:`classifier_training.core.tracks`): illegible crops (``""`` most
        probable) are left out, a track with no legible crop answers ``""``, and
        below ``min_confidence`` the track abstains (``label`` is ``None``).

        Args:
            images: The track's crops (file paths or PIL images), one at least.
            rule: ``logprob``, ``mean`` or ``vote``.
            min_confidence: Abstain below this track confidence.
            batch_size: Images per network call.

        Returns:
            The label, its confidence and the frames used.
        """
        if not images:
            raise ValueError("a track needs one crop at least")
        probs = self.probabilities(images, batch_size)
        return aggregate_track(probs, self.class_names, rule, min_confidence)

    def predict_tracks(
        self,
        images: Sequence[ImageInput],
        track_ids: Sequence[str],
        rule: AggregationRule = DEFAULT_RULE,
        min_confidence: float = 0.0,
        batch_size: int = 32,
    ) -> dict[str, TrackAnswer]:
        """One answer per track for crops of several tracks (see
        :meth:`predict_track`).

        Args:
            images: Crops of any number of tracks, in any order.
            track_ids: The track of each crop.
            rule: ``logprob``, ``mean`` or ``vote``.
            min_confidence: Abstain below this track confidence.
            batch_size: Images per network call.

        Returns:
            Track id to answer, tracks in order of first appearance.
        """
        if len(track_ids) != len(images):
            raise ValueError(f"{len(track_ids)} track ids for {len(images)} crops")
        probs = self.probabilities(images, batch_size)
        return answer_tracks(probs, self.class_names, track_ids, rule, min_confidence)
