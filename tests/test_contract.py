"""The deployment contract and ``labels_mapping.json``: one writer, one reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from classifier_training.checkpoints import load_checkpoint
from classifier_training.core.contract import (
    CHECKPOINT_STATE_KEY,
    LABELS_MAPPING_FILE,
    SEED_KEYS,
    DeploymentContract,
    LabelsMappingError,
    parse_contract,
    read_labels_mapping,
    write_labels_mapping,
)
from classifier_training.core.errors import (
    USER_ERROR_EXIT_CODE,
    ClassifierError,
    run_command,
)
from classifier_training.models.factory import build_network

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "labels_mapping_v1.json"


def _contract(**changes: object) -> DeploymentContract:
    fields: dict[str, object] = {
        "arch": "timm/resnet10t",
        "class_names": ("", "10", "7"),
        "image_size": 40,
        "resize_mode": "letterbox",
        "mean": (0.5, 0.4, 0.3),
        "std": (0.2, 0.2, 0.25),
    }
    return DeploymentContract.model_validate(fields | changes)


def test_todays_mapping_file_still_loads() -> None:
    contract = read_labels_mapping(FIXTURE_V1)
    assert contract.class_names == ("", "1", "23", "7")
    assert contract.image_size == 40
    assert contract.resize_mode == "letterbox"
    assert contract.mean == (0.485, 0.456, 0.406)
    assert contract.std == (0.229, 0.224, 0.225)
    assert (contract.input_name, contract.output_name) == ("input", "logits")
    assert contract.arch is None  # format 1 did not record it


def test_round_trip_stores_each_field_once(tmp_path: Path) -> None:
    contract = _contract()
    path = write_labels_mapping(contract, tmp_path)
    assert path == tmp_path / LABELS_MAPPING_FILE
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temporary left
    stored = json.loads(path.read_text())
    assert stored == {
        "format_version": 5,
        "arch": "timm/resnet10t",
        "class_names": ["", "10", "7"],
        "image_size": 40,
        "resize_mode": "letterbox",
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.2, 0.25],
        "input_name": "input",
        "output_name": "logits",
        "temperature": 1.0,
        "train_counts": None,
        "logit_adjust_tau": 0.0,
        # the seed's keys, derived from the fields above when writing
        "num_classes": 3,
        "class_to_idx": {"": 0, "10": 1, "7": 2},
        "idx_to_class": {"0": "", "1": "10", "2": "7"},
        "normalization": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.25]},
    }
    assert read_labels_mapping(path) == contract
    # ... and never kept in the contract itself
    assert set(DeploymentContract.model_fields).isdisjoint(SEED_KEYS)


def test_format_2_files_load_uncalibrated_and_temperature_is_checked() -> None:
    stored = _fields_only(_contract())
    del stored["temperature"]
    old = parse_contract(stored | {"format_version": 2}, "old.json")
    assert old.temperature == 1.0
    assert old.format_version == 5  # read as today's record
    calibrated = parse_contract(_contract().to_json() | {"temperature": 1.5}, "x")
    assert calibrated.temperature == 1.5
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(LabelsMappingError, match="temperature"):
            parse_contract(_contract().to_json() | {"temperature": bad}, "x.json")


def _fields_only(contract: DeploymentContract) -> dict[str, object]:
    return {k: v for k, v in contract.to_json().items() if k not in SEED_KEYS}


def test_files_with_or_without_the_seed_keys_load() -> None:
    contract = _contract()
    format_3 = _fields_only(contract) | {"format_version": 3}
    assert parse_contract(format_3, "v3.json") == contract
    assert parse_contract(_fields_only(contract), "v4.json") == contract
    some = _fields_only(contract) | {"idx_to_class": {"0": "", "1": "10", "2": "7"}}
    assert parse_contract(some, "some.json") == contract


@pytest.mark.parametrize(
    ("key", "value", "basis"),
    [
        ("num_classes", 4, "class_names"),
        ("class_to_idx", {"": 0, "7": 1, "10": 2}, "class_names"),
        ("idx_to_class", {"0": "", "1": "7", "2": "10"}, "class_names"),
        ("idx_to_class", {"0": "", "1": "10"}, "class_names"),
        ("normalization", {"mean": [0.5, 0.4, 0.3], "std": [1, 1, 1]}, "mean/std"),
        ("normalization", {"mean": [0.485, 0.456, 0.406]}, "mean/std"),
    ],
)
def test_seed_keys_that_disagree_are_refused_in_one_line(
    tmp_path: Path, key: str, value: object, basis: str
) -> None:
    path = tmp_path / LABELS_MAPPING_FILE
    path.write_text(json.dumps(_contract().to_json() | {key: value}))
    with pytest.raises(LabelsMappingError) as raised:
        read_labels_mapping(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: {key} disagrees with {basis}")
    assert "\n" not in text


def test_a_format_1_file_whose_keys_disagree_is_refused() -> None:
    data = json.loads(FIXTURE_V1.read_text())
    data["class_to_idx"] = {"": 0, "1": 1, "7": 2, "23": 3}
    with pytest.raises(LabelsMappingError, match="class_to_idx disagrees"):
        parse_contract(data, "v1.json")


UNSORTED = ("b", "a", "")


def test_class_order_is_kept_as_stored_through_file_and_checkpoint(
    tmp_path: Path,
) -> None:
    """Every other test contract is in sorted order; a reader that sorted the
    names would pass them and silently relabel every prediction."""
    contract = _contract(arch="resnet18", class_names=UNSORTED)
    from_file = read_labels_mapping(write_labels_mapping(contract, tmp_path))
    assert from_file.class_names == UNSORTED
    assert from_file.class_to_idx == {"b": 0, "a": 1, "": 2}
    seed = json.loads((tmp_path / LABELS_MAPPING_FILE).read_text())
    assert seed["idx_to_class"] == {"0": "b", "1": "a", "2": ""}

    network = build_network("resnet18", len(UNSORTED))
    checkpoint = tmp_path / "best.ckpt"
    torch.save(
        {
            "state_dict": {f"network.{k}": v for k, v in network.state_dict().items()},
            # as Lightning stores the data module's state
            "ImageFolderDataModule": {CHECKPOINT_STATE_KEY: contract.to_json()},
        },
        checkpoint,
    )
    loaded = load_checkpoint(checkpoint)
    assert loaded.contract == contract
    assert loaded.contract.class_names == UNSORTED


def test_derived_facts_are_computed_not_stored() -> None:
    contract = _contract()
    assert contract.num_classes == 3
    assert contract.class_to_idx == {"": 0, "10": 1, "7": 2}
    assert contract.idx_to_class == {0: "", 1: "10", 2: "7"}
    with pytest.raises(ValidationError):
        contract.image_size = 64  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a labels mapping (cannot read it as JSON"),
        ("[1, 2]", "a JSON object is expected, found list"),
        ('{"model": "x"}', "not a labels mapping of this project"),
        ('{"format_version": 6}', "format 6 was written by a newer version"),
        ('{"num_classes": 2, "idx_to_class": {"0": "a"}}', "format 1 entry missing"),
    ],
)
def test_foreign_or_broken_files_are_named_in_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / LABELS_MAPPING_FILE
    path.write_text(content)
    with pytest.raises(LabelsMappingError) as raised:
        read_labels_mapping(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_invalid_fields_are_refused(tmp_path: Path) -> None:
    good = _contract().to_json()
    for change, message in (
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
        ({"class_names": ["a", "a"]}, "class names repeated"),
        ({"std": [0.2, 0.0, 0.2]}, "std must be > 0"),
        ({"resize_mode": "crop"}, "resize_mode"),
        ({"image_size": 2}, "image_size"),
    ):
        with pytest.raises(LabelsMappingError, match=message):
            parse_contract(good | change, "x.json")
    with pytest.raises(LabelsMappingError, match=r"missing\.json: labels mapping file"):
        read_labels_mapping(tmp_path / "missing.json")


def test_only_the_projects_errors_become_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def user_error() -> int:
        raise LabelsMappingError("x.json: broken")

    assert run_command(user_error) == USER_ERROR_EXIT_CODE
    assert capsys.readouterr().err == "error: x.json: broken\n"

    def bug() -> int:
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        run_command(bug)
    assert issubclass(LabelsMappingError, ClassifierError)
