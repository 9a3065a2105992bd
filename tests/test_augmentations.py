"""The augmentation registry: one table that both augmentation paths build from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from torchvision.transforms import v2

from classifier_training.config import (
    ConfigError,
    DataModuleConfig,
    DegradationsConfig,
    TransformsConfig,
)
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.data.augmentations import (
    DEGRADATIONS,
    OPERATIONS,
    workers_only_keys,
)
from classifier_training.data.device_transforms import (
    DeviceAugmentation,
    resolve_augment_on,
)
from classifier_training.data.transforms import (
    build_augmentation,
    build_train_transform,
)

SIZE = 24
FILL = (124, 116, 104)
#: Every operation of the table switched on (the policy only where allowed).
EVERYTHING: dict[str, Any] = {
    "horizontal_flip_p": 0.5,
    "crop_scale": (0.5, 1.0),
    "random_erasing_p": 0.5,
    "degradations": {"jpeg": {"p": 0.5}, "noise": {"p": 1.0}},
}
OFF: dict[str, Any] = {
    "rotation_degrees": 0.0,
    "translate": 0.0,
    "scale": (1.0, 1.0),
    "shear_degrees": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
    "grayscale_p": 0.0,
}


def test_every_config_field_has_exactly_one_entry() -> None:
    keys = [key for op in OPERATIONS.values() for key in op.keys]
    assert len(keys) == len(set(keys)), "a key is read by two entries"
    fields = set(TransformsConfig.model_fields)
    assert fields - set(keys) == set(), "config fields without an entry"
    assert set(keys) - fields == set(), "entries naming no config field"
    degradations = set(DegradationsConfig.model_fields)
    assert degradations - set(DEGRADATIONS) == set(), "degradations without an entry"
    assert set(DEGRADATIONS) - degradations == set(), "entries naming no degradation"


def _recording(calls: list[str], name: str, build: Callable[..., Any]) -> Any:
    def recorded(*args: Any) -> Any:
        calls.append(name)
        return build(*args)

    return recorded


def test_both_paths_build_each_switched_on_entry_in_table_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    workers: list[str] = []
    device: list[str] = []
    for name, op in list(OPERATIONS.items()):
        spied = replace(
            op,
            workers=_recording(workers, name, op.workers),
            device=op.device and _recording(device, name, op.device),
        )
        monkeypatch.setitem(OPERATIONS, name, spied)
    with_policy = TransformsConfig(**EVERYTHING, auto_augment="trivialaugment")
    build_train_transform(
        DataModuleConfig(data_root=tmp_path, image_size=SIZE, transforms=with_policy)
    )
    assert workers == list(OPERATIONS)
    DeviceAugmentation(
        TransformsConfig(**EVERYTHING), IMAGENET_MEAN, IMAGENET_STD, SIZE
    )
    assert device == [name for name in OPERATIONS if name != "auto_augment"]


def test_a_new_entry_reaches_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding an augmentation is one table entry plus its two operations."""
    from torch import nn

    marker = replace(
        OPERATIONS["grayscale"],
        keys=("marker",),
        on=lambda aug: True,
        workers=lambda aug, context: v2.Identity(),
        device=lambda aug, context: nn.Identity(),
    )
    monkeypatch.setitem(OPERATIONS, "marker", marker)
    aug = TransformsConfig(**OFF)
    assert [type(op) for op in build_augmentation(aug, FILL)] == [v2.Identity]
    module = DeviceAugmentation(aug, IMAGENET_MEAN, IMAGENET_STD)
    assert [type(op) for op in module.augment] == [nn.Identity]


def test_the_table_marks_what_runs_on_the_workers_path_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert workers_only_keys(TransformsConfig(**EVERYTHING)) == []
    policy = TransformsConfig(auto_augment="randaugment", auto_augment_magnitude=5)
    assert workers_only_keys(policy) == ["data.transforms.auto_augment"]
    with pytest.raises(ConfigError, match=r"data\.transforms\.auto_augment"):
        DeviceAugmentation(policy, IMAGENET_MEAN, IMAGENET_STD)
    # An entry without a device builder is workers-only, whatever it is.
    grayscale = OPERATIONS["grayscale"]
    monkeypatch.setitem(OPERATIONS, "grayscale", replace(grayscale, device=None))
    digits = TransformsConfig()
    assert workers_only_keys(digits) == ["data.transforms.grayscale_p"]
    assert resolve_augment_on("auto", "gpu", 224, digits) == "workers"
    assert workers_only_keys(TransformsConfig(grayscale_p=0.0)) == []


@pytest.mark.parametrize(
    ("key", "value", "affine", "jitter"),
    [
        ("rotation_degrees", 5.0, True, False),
        ("translate", 0.1, True, False),
        ("scale", (0.9, 1.0), True, False),
        ("shear_degrees", 3.0, True, False),
        ("brightness", 0.2, False, True),
        ("contrast", 0.2, False, True),
        ("saturation", 0.2, False, True),
        ("hue", 0.1, False, True),
        ("grayscale_p", 0.5, False, False),
    ],
)
def test_affine_and_colour_jitter_switch_on_with_any_of_their_keys(
    key: str, value: Any, affine: bool, jitter: bool
) -> None:
    assert not TransformsConfig(**OFF).has_affine
    assert not TransformsConfig(**OFF).has_colour_jitter
    aug = TransformsConfig(**{**OFF, key: value})
    assert aug.has_affine is affine
    assert aug.has_colour_jitter is jitter


def test_degradations_switched_off_add_no_step() -> None:
    # Ranges without a probability change nothing: no step, not even an identity.
    ranges_only = TransformsConfig(
        **OFF, degradations={"jpeg": {"p": 0.0, "quality": (30, 40)}}
    )
    assert build_augmentation(ranges_only, FILL) == []
    on = TransformsConfig(**OFF, degradations={"jpeg": {"p": 0.5}})
    assert len(build_augmentation(on, FILL)) == 1
