"""The deployment contract: everything a trained model needs besides its weights.

:class:`DeploymentContract` is built once, by the data module, from the data config
and the train split's classes. It travels inside every checkpoint (the data
module's checkpoint state) and is written next to ``model.onnx`` as
``labels_mapping.json`` by :func:`write_labels_mapping`, the only writer. Export,
both inference classifiers and the checkpoint loader read it back through
:func:`read_labels_mapping` / :func:`parse_contract`, the only readers.

``labels_mapping.json`` (format 5) is the contract's fields, followed by the keys
of the seed's format (``num_classes``, ``class_to_idx``, ``idx_to_class`` with
string indices, ``normalization``), which consumers written for the original
design read. Those keys are derived from the contract when it is serialised
(:meth:`DeploymentContract.to_json`), never stored in it::

    {"format_version": 4, "arch": "resnet18", "class_names": ["", "1", "23"],
     "image_size": 96, "resize_mode": "squash", "mean": [0.485, 0.456, 0.406],
     "std": [0.229, 0.224, 0.225], "input_name": "input", "output_name": "logits",
     "temperature": 1.37, "train_counts": [40, 310, 12], "logit_adjust_tau": 0.0,
     "num_classes": 3, "class_to_idx": {"": 0, "1": 1, "23": 2},
     "idx_to_class": {"0": "", "1": "1", "2": "23"},
     "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}

The pixel pipeline the numbers plug into is fixed by the format version (see
:mod:`classifier_training.core.preprocessing`); confidences are
``softmax((logits - logit_adjust_tau * log(prior)) / temperature)`` (the ONNX
graph outputs the raw logits; the priors are the train split's ``train_counts``
shares, :mod:`classifier_training.core.long_tail`).

History, all still read: format 5 added ``train_counts`` and
``logit_adjust_tau`` (older files read with no counts and no adjustment);
format 4 added the seed's keys; format 3 added
``temperature`` (format-2 files read as 1.0); format-1 files (written before the
contract existed; no ``format_version`` key, the seed's keys and a
``preprocessing`` block) read with ``arch`` ``None``, as their architecture was
not recorded. The seed's keys are optional on reading; where present, they must
agree with ``class_names``, ``mean`` and ``std`` (a file edited by hand in one
place only is refused). Why each addition is a new version rather than an
optional key: readers of the previous format forbid unknown keys, so an older
reader says "written by a newer version" instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from classifier_training.core.errors import ClassifierError
from classifier_training.core.io import atomic_write_json
from classifier_training.core.preprocessing import (
    INTERPOLATION,
    PIXEL_SCALE,
    ResizeMode,
    mean_fill,
)
from classifier_training.core.run_files import CHECKPOINTS_DIR, LABELS_MAPPING_FILE

FORMAT_VERSION = 5
#: Versions of the ``format_version`` key this code reads (format 1 has no such key;
#: 2: no temperature; 3: no seed keys; 4: no train counts, no logit adjustment).
READABLE_VERSIONS = (2, 3, 4, 5)
#: The seed's keys, derived from the contract's fields when it is serialised.
SEED_KEYS = ("num_classes", "class_to_idx", "idx_to_class", "normalization")
#: Key of the contract in the data module's checkpoint state (Lightning stores that
#: state under the data module's class name).
CHECKPOINT_STATE_KEY = "deployment_contract"
#: Names of the ONNX graph's input and output (kept from format 1).
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

Triple = tuple[float, float, float]


class LabelsMappingError(ClassifierError):
    """A ``labels_mapping.json`` (or stored contract) is missing, foreign or broken."""


class DeploymentContract(BaseModel):
    """What a deployment needs to turn images into class names with the weights.

    Attributes:
        format_version: Version of this record (5).
        arch: Architecture name (``resnet18``, ``timm/<name>``); ``None`` only for
            mappings read from format-1 files, which did not record it.
        class_names: Class names in output-index order (``""`` is the empty
            label). The data module sorts them, so ``""`` comes first; readers
            keep the stored order, whatever it is.
        image_size: Side of the square network input.
        resize_mode: ``squash`` or ``letterbox`` (padded with the mean colour).
        mean: Per-channel normalisation mean (RGB, 0-1 scale).
        std: Per-channel normalisation standard deviation (RGB, 0-1 scale).
        input_name: Name of the ONNX input (``N x 3 x H x W`` float32).
        output_name: Name of the ONNX output (``N x num_classes`` logits).
        temperature: Confidences are ``softmax(logits / temperature)``; fitted on
            the validation set after training (1.0: not calibrated), after the
            logit adjustment when there is one.
        train_counts: Train rows per class, in output-index order: the class
            priors of the logit adjustment and of the long-tail report
            (``None``: not recorded, files before format 5).
        logit_adjust_tau: Post-hoc logit adjustment applied at inference:
            ``tau * log(prior)`` is subtracted from the logits (0: none; set by
            ``classifier-evaluate --logit-adjust``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[5] = 5
    arch: Annotated[str, Field(min_length=1)] | None
    class_names: tuple[str, ...] = Field(min_length=2)
    image_size: int = Field(ge=8, le=4096)
    resize_mode: ResizeMode
    mean: Triple
    std: Triple
    input_name: str = Field(default=INPUT_NAME, min_length=1)
    output_name: str = Field(default=OUTPUT_NAME, min_length=1)
    temperature: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    train_counts: tuple[int, ...] | None = None
    logit_adjust_tau: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"class names repeated: {repeated[:5]}")
        return names

    @field_validator("std")
    @classmethod
    def _positive(cls, std: Triple) -> Triple:
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {list(std)}")
        return std

    @model_validator(mode="after")
    def _priors_fit_the_classes(self) -> DeploymentContract:
        counts = self.train_counts
        if counts is not None:
            if len(counts) != len(self.class_names):
                raise ValueError(
                    f"{len(counts)} train_counts (class priors) for "
                    f"{len(self.class_names)} class_names; they must match one to one"
                )
            absent = [n for n, c in zip(self.class_names, counts, strict=True) if c < 1]
            if absent:
                raise ValueError(
                    f"class(es) {absent[:10]} have no train rows (train_counts 0): "
                    "no prior"
                )
        if self.logit_adjust_tau > 0 and counts is None:
            raise ValueError(
                "logit_adjust_tau needs the train_counts (class priors), which this "
                "model does not record: retrain it with this version"
            )
        return self

    @property
    def num_classes(self) -> int:
        """Number of outputs."""
        return len(self.class_names)

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Class name to output index."""
        return {name: i for i, name in enumerate(self.class_names)}

    @property
    def idx_to_class(self) -> dict[int, str]:
        """Output index to class name."""
        return dict(enumerate(self.class_names))

    def seed_keys(self) -> dict[str, Any]:
        """The seed's keys (:data:`SEED_KEYS`) as JSON values, derived from the fields.

        ``idx_to_class`` has string indices (JSON object keys), as the seed wrote.
        """
        return {
            "num_classes": self.num_classes,
            "class_to_idx": self.class_to_idx,
            "idx_to_class": {str(i): name for i, name in self.idx_to_class.items()},
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }

    def to_json(self) -> dict[str, Any]:
        """The JSON-serialisable record: the fields, then the seed's keys.

        Also the form stored in checkpoints (the data module's state).
        """
        return self.model_dump(mode="json") | self.seed_keys()


def _one_line(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        parts.append(f"{key}: {item['msg']}")
    return "; ".join(parts)


def _from_format_1(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Translate a format-1 mapping (today's fixture) into contract fields."""
    try:
        count = int(data["num_classes"])
        names = [data["idx_to_class"][str(i)] for i in range(count)]
        size = int(data["image_size"])
        spec: Mapping[str, Any] = data.get("preprocessing") or {}
        resize: Mapping[str, Any] = spec.get("resize") or {}
        norm = data["normalization"]
        mean, std = spec.get("mean", norm["mean"]), spec.get("std", norm["std"])
    except (KeyError, TypeError, ValueError) as error:
        raise LabelsMappingError(
            f"{source}: not a labels mapping of this project (format 1 entry "
            f"missing or malformed: {error!r})"
        ) from None
    # Format 1 described fixed facts; refuse any file that says otherwise.
    fixed = {
        "resize.size": (list(resize.get("size", [size, size])), [size, size]),
        "resize.interpolation": (
            resize.get("interpolation", INTERPOLATION),
            INTERPOLATION,
        ),
        "color_mode": (spec.get("color_mode", "RGB"), "RGB"),
        "layout": (spec.get("layout", "NCHW"), "NCHW"),
        "scale": (float(spec.get("scale", PIXEL_SCALE)), PIXEL_SCALE),
    }
    if "pad_color" in resize:
        fixed["resize.pad_color"] = (list(resize["pad_color"]), list(mean_fill(mean)))
    for key, (found, expected) in fixed.items():
        if found != expected:
            raise LabelsMappingError(
                f"{source}: preprocessing.{key} is {found!r}; this code "
                f"reproduces only {expected!r}"
            )
    return {
        "arch": None,
        "class_names": names,
        "image_size": size,
        "resize_mode": resize.get("mode", "squash"),
        "mean": mean,
        "std": std,
    }


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_seed_keys(
    contract: DeploymentContract, stored: Mapping[str, Any], source: str
) -> None:
    """Refuse seed keys that disagree with the fields they are derived from."""
    derived = contract.seed_keys()
    for key in SEED_KEYS:
        if key in stored and stored[key] != derived[key]:
            basis = "mean/std" if key == "normalization" else "class_names"
            raise LabelsMappingError(
                f"{source}: {key} disagrees with {basis} (the file says "
                f"{_short(stored[key])}, {basis} give {_short(derived[key])}); "
                "one of them was edited by hand"
            )


def parse_contract(data: object, source: str) -> DeploymentContract:
    """Validate a stored contract (format 2, 3 or 4, or a format-1 labels mapping).

    Args:
        data: The parsed JSON, or the dict stored in a checkpoint.
        source: The file it came from, for messages.

    Returns:
        The contract.

    Raises:
        LabelsMappingError: One line naming ``source`` when the data is not a
            contract of this project, was written by a newer version, or holds
            seed keys that disagree with ``class_names``/``mean``/``std``.
    """
    if not isinstance(data, Mapping):
        raise LabelsMappingError(
            f"{source}: not a labels mapping of this project (a JSON object is "
            f"expected, found {type(data).__name__})"
        )
    version = data.get("format_version")
    # Optional in every format; checked against the contract once it is read.
    stored_seed_keys = {k: v for k, v in data.items() if k in SEED_KEYS}
    if version is None and "idx_to_class" in data:
        fields = _from_format_1(data, source)
    elif version in READABLE_VERSIONS:
        # Older formats lack keys that have defaults (format 2: the temperature,
        # 1.0 = uncalibrated; formats 2-3: the seed's keys, derived anyway).
        fields = {k: v for k, v in data.items() if k not in SEED_KEYS}
        fields["format_version"] = FORMAT_VERSION
    elif isinstance(version, int) and version > FORMAT_VERSION:
        raise LabelsMappingError(
            f"{source}: labels mapping format {version} was written by a newer "
            "version of classifier-training (this one reads formats "
            f"1-{FORMAT_VERSION})"
        )
    else:
        raise LabelsMappingError(
            f"{source}: not a labels mapping of this project (no format_version "
            "and no idx_to_class)"
        )
    try:
        contract = DeploymentContract.model_validate(fields)
    except ValidationError as error:
        raise LabelsMappingError(
            f"{source}: invalid labels mapping: {_one_line(error)}"
        ) from None
    _check_seed_keys(contract, stored_seed_keys, source)
    return contract


def read_labels_mapping(path: Path) -> DeploymentContract:
    """Read and validate a ``labels_mapping.json`` (formats 1 to 4).

    Args:
        path: The file.

    Returns:
        The contract.

    Raises:
        LabelsMappingError: Naming the file when it is missing, not JSON, or not
            a labels mapping of this project.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelsMappingError(f"{path}: labels mapping file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabelsMappingError(
            f"{path}: not a labels mapping (cannot read it as JSON: {error})"
        ) from None
    return parse_contract(data, str(path))


def write_labels_mapping(contract: DeploymentContract, path: Path) -> Path:
    """Write ``labels_mapping.json`` atomically: the only writer of that file.

    Args:
        contract: The contract.
        path: Destination file, or a folder to write ``labels_mapping.json`` in.

    Returns:
        The path written.
    """
    if path.is_dir():
        path = path / LABELS_MAPPING_FILE
    return atomic_write_json(path, contract.to_json())


def run_folder(model_path: Path) -> Path:
    """The run folder a model file belongs to.

    ``RUN/checkpoints/x.ckpt`` belongs to ``RUN``; any other file (``RUN/model.onnx``,
    a copied checkpoint) to the folder it is in.

    Args:
        model_path: A ``.onnx`` or checkpoint file.

    Returns:
        The folder (absolute).
    """
    folder = model_path.resolve().parent
    return folder.parent if folder.name == CHECKPOINTS_DIR else folder


def find_labels_mapping(model_path: Path, explicit: str | Path | None = None) -> Path:
    """Locate the ``labels_mapping.json`` that belongs to a model file.

    ``explicit`` when given; else beside the model, then in its :func:`run_folder`
    (``RUN/checkpoints/x.ckpt`` -> ``RUN/labels_mapping.json``).

    Args:
        model_path: The ``.onnx`` (or checkpoint) file.
        explicit: A mapping path given by the user.

    Returns:
        The mapping file.

    Raises:
        LabelsMappingError: If none exists (the places searched are named).
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise LabelsMappingError(f"{path}: labels mapping file not found")
        return path
    folders = [model_path.parent]
    run = run_folder(model_path)
    if run != model_path.parent.resolve():
        folders.append(run)
    for folder in folders:
        if (folder / LABELS_MAPPING_FILE).is_file():
            return folder / LABELS_MAPPING_FILE
    raise LabelsMappingError(
        f"{model_path}: no {LABELS_MAPPING_FILE} found (looked in "
        f"{', '.join(str(f) for f in folders)}); pass its path with --labels-mapping"
    )
