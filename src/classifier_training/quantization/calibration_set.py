"""The images an int8 model is calibrated on, preprocessed as deployment does.

Static quantization fixes each activation's range from a few hundred real
inputs. They are read exactly as the deployed model will see them: through the
contract's :class:`~classifier_training.core.preprocessing.Preprocessor`, the
pixel pipeline of evaluation and of both classifiers. The default source is the
dataset's train split; ``--calibration-dir`` takes any folder of images.
Unreadable files are skipped, counted and named, and the next image is taken in
their place.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import UnidentifiedImageError

from classifier_training.core.errors import ClassifierError
from classifier_training.core.preprocessing import Preprocessor
from classifier_training.core.readers import find_splits, iter_image_files, read_split

#: Calibration images by default: onnxruntime's guidance is "a few hundred".
DEFAULT_CALIBRATION_IMAGES = 300
#: Skipped files named in messages and in the summary.
NAMED_SKIPS = 10


class CalibrationDataError(ClassifierError):
    """No usable calibration images (the message names the source)."""


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration images and what was skipped on the way.

    Attributes:
        images: ``N x 3 x H x W`` float32, normalised as the contract says.
        source: Where they came from (a split folder or a folder).
        files: The image files used, in order.
        skipped: ``(file, reason)`` of each unreadable file passed over.
    """

    images: npt.NDArray[np.float32]
    source: Path
    files: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...]

    def skipped_line(self) -> str | None:
        """One line counting and naming the skipped files (``None``: none)."""
        if not self.skipped:
            return None
        named = "; ".join(f"{path} ({why})" for path, why in self.skipped[:NAMED_SKIPS])
        more = len(self.skipped) - NAMED_SKIPS
        tail = f"; and {more} more" if more > 0 else ""
        return (
            f"{self.source}: skipped {len(self.skipped)} unreadable calibration "
            f"image(s): {named}{tail}"
        )

    def to_json(self) -> dict[str, Any]:
        """Source, count, and the skipped files (the first few named)."""
        return {
            "source": str(self.source),
            "images": len(self.files),
            "skipped": {
                "count": len(self.skipped),
                "files": {str(p): why for p, why in self.skipped[:NAMED_SKIPS]},
            },
        }


def _reason(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "not a readable image"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def calibration_files(
    data_root: Path | None, folder: Path | None
) -> tuple[Path, list[Path]]:
    """The candidate images: ``folder``'s, else the train split's (each once).

    Args:
        data_root: Dataset root (its ``train/`` split is used).
        folder: A folder of images (recursive) instead of the train split.

    Returns:
        The source folder and its image files, sorted.

    Raises:
        CalibrationDataError: If the source is missing or holds no images.
    """
    if folder is not None:
        if not folder.is_dir():
            raise CalibrationDataError(f"{folder}: calibration folder not found")
        files = iter_image_files(folder)
        source = folder
    else:
        if data_root is None:
            raise ValueError("calibration needs data_root or folder")
        train = find_splits(data_root)["train"]
        if train is None:
            raise CalibrationDataError(
                f"{data_root}: no train/ split to calibrate with; pass "
                "--calibration-dir"
            )
        files = sorted({sample.image for sample in read_split(train)})
        source = train
    if not files:
        raise CalibrationDataError(f"{source}: no image files to calibrate with")
    return source, files


def load_calibration_set(
    source: Path,
    files: Sequence[Path],
    preprocessor: Preprocessor,
    count: int = DEFAULT_CALIBRATION_IMAGES,
    seed: int = 0,
) -> CalibrationSet:
    """Preprocess ``count`` images drawn at random (seeded) from ``files``.

    Args:
        source: Where the files come from (for messages).
        files: Candidate image files.
        preprocessor: The contract's preprocessing.
        count: Images wanted (fewer when ``files`` has fewer readable ones).
        seed: Seed of the draw (the same files every time).

    Returns:
        The calibration set.

    Raises:
        CalibrationDataError: If no file could be read.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    order = list(files)
    random.Random(seed).shuffle(order)
    arrays: list[npt.NDArray[Any]] = []
    used: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in order:
        if len(arrays) == count:
            break
        try:
            arrays.append(preprocessor(path))
        except Exception as error:  # PIL raises many types for corrupt files
            skipped.append((path, _reason(error)))
            continue
        used.append(path)
    result = CalibrationSet(
        images=np.stack(arrays).astype(np.float32)
        if arrays
        else np.empty(0, np.float32),
        source=source,
        files=tuple(used),
        skipped=tuple(skipped),
    )
    if not arrays:
        raise CalibrationDataError(
            f"{source}: none of {len(order)} image(s) could be read for "
            f"calibration: {result.skipped_line()}"
        )
    return result
