"""ImageFolderDataModule: splits, layouts, transforms, sampler, weights, config."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from classifier_training.config import DataModuleConfig, load_data_config
from classifier_training.core.preprocessing import resize_to_input
from classifier_training.core.readers import DataError, Sample
from classifier_training.data.datamodule import (
    ImageFolderDataModule,
    inverse_frequency_weights,
)
from classifier_training.data.sampler import TrackingWeightedRandomSampler
from classifier_training.data.splits import assign_classes
from tests.helpers import make_jsonl_dataset, write_jsonl_split


def make_dm(root: Path, **overrides: Any) -> ImageFolderDataModule:
    # The per-image (workers) path; tests/test_device_augment.py covers `device`.
    values: dict[str, Any] = {"data_root": root, "image_size": 16, "batch_size": 4}
    values.update(num_workers=0, augment_on="workers", **overrides)
    dm = ImageFolderDataModule(load_data_config(values), arch="resnet18")
    dm.setup("fit")
    return dm


def test_jsonl_splits_and_classes(jsonl_root: Path) -> None:
    dm = make_dm(jsonl_root)
    assert dm.num_classes == 3
    assert dm.class_names == ["", "23", "7"]
    assert dm.idx_to_class == {0: "", 1: "23", 2: "7"}
    assert {k: len(v) for k, v in dm.datasets.items()} == {
        "train": 18, "val": 6, "test": 6,
    }  # fmt: skip
    assert dm.has_test


def test_folder_layout_with_val_alias(folder_root: Path) -> None:
    dm = make_dm(folder_root)
    assert dm.class_names == ["cat", "dog", "fox"]
    assert dm.layouts == {"train": "folder", "val": "folder", "test": "folder"}
    assert len(dm.datasets["val"]) == 6


def test_batches_have_configured_size_and_dtype(jsonl_root: Path) -> None:
    dm = make_dm(jsonl_root, image_size=20)
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (4, 3, 20, 20)
    assert batch["images"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long
    val = next(iter(dm.val_dataloader()))
    assert val["images"].shape[1:] == (3, 20, 20)


def test_eval_transform_is_the_documented_preprocessing_and_train_is_random(
    jsonl_root: Path,
) -> None:
    dm = make_dm(jsonl_root)
    val = dm.datasets["val"]
    # Computed here from the documented recipe: RGB, bilinear resize of the whole
    # crop, scale to [0, 1], ImageNet mean/std, CHW.
    for index in (0, 3):
        sample = val.samples[index]
        with Image.open(sample.image) as image:
            resized = image.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32) / 255.0
        mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
        std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
        expected = torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1))
        item = val[index]
        torch.testing.assert_close(item["images"], expected, atol=1e-5, rtol=0)
        assert item["labels"] == dm.class_names.index(sample.label)
    train = dm.datasets["train"]
    assert not torch.equal(train[0]["images"], train[0]["images"])


def test_eval_keeps_the_whole_crop(tmp_path: Path) -> None:
    # A wide crop with coloured edges: the eval resize must keep both edges.
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 0, 0), (0, 0, 4, 20))
    image.paste((0, 0, 255), (36, 0, 40, 20))
    squashed = resize_to_input(image, 10, "squash")
    assert squashed.size == (10, 10)
    assert squashed.getpixel((0, 5))[0] > 200  # type: ignore[index]
    assert squashed.getpixel((9, 5))[2] > 200  # type: ignore[index]
    boxed = resize_to_input(image, 10, "letterbox", fill=(7, 7, 7))
    assert boxed.getpixel((5, 0)) == (7, 7, 7)
    assert boxed.getpixel((0, 5))[0] > 200  # type: ignore[index]


def test_setup_runs_once(jsonl_root: Path) -> None:
    dm = make_dm(jsonl_root)
    datasets = dm.datasets["train"]
    dm.setup("fit")
    dm.setup("test")
    assert dm.datasets["train"] is datasets


def test_unknown_valid_labels_are_excluded_and_reported(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "ds", labels=("1", "2"))
    write_jsonl_split(root / "valid", ["1", "2", "99"], 2, subdir="extra")
    dm = make_dm(root)
    assert dm.excluded["val"].count == 2
    assert dm.excluded["test"].count == 0
    assert len(dm.datasets["val"]) == 4 + 4
    assert dm.summary()["excluded_rows"]["val"] == {"count": 2, "labels": {"99": 2}}


def test_missing_valid_split_is_an_error(jsonl_root: Path) -> None:
    import shutil

    shutil.rmtree(jsonl_root / "valid")
    with pytest.raises(DataError, match="no valid/"):
        make_dm(jsonl_root)


def test_single_class_is_an_error(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "ds", labels=("1",))
    with pytest.raises(DataError, match="at least 2 classes"):
        make_dm(root)


def test_class_weights_are_inverse_frequency() -> None:
    weights = inverse_frequency_weights(torch.tensor([10, 30, 60]))
    assert torch.allclose(weights, torch.tensor([100 / 30, 100 / 90, 100 / 180]))
    counts = torch.tensor([10.0, 30.0, 60.0])
    assert torch.isclose((weights * counts).sum() / counts.sum(), torch.tensor(1.0))


def imbalanced_root(tmp_path: Path) -> Path:
    root = tmp_path / "imb"
    write_jsonl_split(root / "train", ["a"], 20)
    write_jsonl_split(root / "train", ["b"], 4, subdir="more")
    write_jsonl_split(root / "valid", ["a", "b"], 1)
    return root


def drawn_shares(dm: ImageFolderDataModule, epochs: int = 30) -> torch.Tensor:
    sampler = dm.train_sampler
    assert isinstance(sampler, TrackingWeightedRandomSampler)
    counts = torch.zeros(dm.num_classes)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # each epoch is drawn from (seed, epoch)
        list(iter(sampler))
        counts += sampler.drawn_class_counts(
            dm.datasets["train"].targets, dm.num_classes
        )
    return counts / counts.sum()


def test_sampler_auto_balances_classes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = make_dm(imbalanced_root(tmp_path))
    assert dm.train_class_counts.tolist() == [20, 4]
    sampler = dm.train_sampler
    assert sampler is not None
    expected = sampler.expected_class_shares(dm.datasets["train"].targets, 2)
    assert torch.allclose(expected, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert abs(drawn_shares(dm)[0].item() - 0.5) < 0.06
    assert len(sampler.drawn_indices) == 24


def test_sampler_manual_follows_class_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = make_dm(
        imbalanced_root(tmp_path),
        sampler={"mode": "manual", "class_weights": {"b": 3.0}},
    )
    assert abs(drawn_shares(dm)[1].item() - 0.75) < 0.06


def test_sampler_manual_rejects_unknown_class(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown class name\(s\) \['zebra'\]"):
        make_dm(
            imbalanced_root(tmp_path),
            sampler={"mode": "manual", "class_weights": {"zebra": 2.0}},
        )


def test_sampler_disabled_shuffles_without_replacement(tmp_path: Path) -> None:
    dm = make_dm(imbalanced_root(tmp_path), sampler={"mode": "disabled"})
    assert dm.train_sampler is None
    labels = torch.cat([b["labels"] for b in dm.train_dataloader()])
    assert Counter(labels.tolist()) == {0: 20, 1: 4}


def test_config_rejects_unknown_keys_with_the_key_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.batch_sise: unknown key"):
        load_data_config({"data_root": tmp_path, "batch_sise": 3})
    with pytest.raises(ValueError, match=r"data\.sampler\.moed: unknown key"):
        load_data_config({"data_root": tmp_path, "sampler": {"moed": "auto"}})


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"batch_size": 0}, "data.batch_size"),
        ({"image_size": 2}, "data.image_size"),
        ({"sampler": {"mode": "balanced"}}, "data.sampler.mode"),
        ({"sampler": {"mode": "manual"}}, "data.sampler"),
        ({"std": [0.2, 0.0, 0.2]}, "data"),
        ({"transforms": {"scale": [1.2, 0.8]}}, "data.transforms"),
    ],
)
def test_config_rejects_bad_values(
    tmp_path: Path, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_data_config({"data_root": tmp_path, **values})


def test_config_is_frozen(tmp_path: Path) -> None:
    config = DataModuleConfig(data_root=tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        config.batch_size = 3  # type: ignore[misc]


def test_every_attribute_exists_before_setup(jsonl_root: Path) -> None:
    config = load_data_config({"data_root": jsonl_root, "augment_on": "workers"})
    dm = ImageFolderDataModule(config, arch="resnet18")
    for name in (
        "split_dirs", "layouts", "datasets", "excluded", "caches", "loaders",
        "skipped_at_startup",
    ):  # fmt: skip
        assert getattr(dm, name) == {}, name
    assert dm.train_sampler is None
    with pytest.raises(RuntimeError, match=r"setup\(\) first"):
        _ = dm.class_names


def test_classes_come_from_train_and_eval_rows_of_other_labels_are_left_out(
    tmp_path: Path,
) -> None:
    def rows(split: str, *labels: str) -> list[Sample]:
        return [
            Sample(tmp_path / f"{split}{i}.png", x, tmp_path)
            for i, x in enumerate(labels)
        ]

    classed = assign_classes(
        {"train": rows("t", "b", "", "a", "b"), "val": rows("v", "a", "z", "z")},
        tmp_path / "train",
    )
    assert classed.class_names == ("", "a", "b")
    assert classed.class_to_idx == {"": 0, "a": 1, "b": 2}
    assert [s.label for s in classed.rows["val"]] == ["a"]
    assert classed.excluded["val"].labels == {"z": 2}
    with pytest.raises(
        DataError, match=r"train: need at least 2 classes, found \['a'\]"
    ):
        assign_classes({"train": rows("t", "a", "a")}, tmp_path / "train")


def test_group_key_gives_each_row_its_track(jsonl_root: Path) -> None:
    # tests.helpers writes metadata {"variant": 0|1}: two groups per split.
    dm = make_dm(jsonl_root, group_key="variant")
    groups = dm.groups("val")
    assert len(groups) == len(dm.split_samples("val"))
    assert sorted(set(groups)) == ["0", "1"]
    alone = make_dm(jsonl_root).groups("val")
    assert len(set(alone)) == len(alone)  # no key: every row stands alone


def test_group_key_no_row_has_or_on_class_folders_is_refused(
    jsonl_root: Path, folder_root: Path
) -> None:
    with pytest.raises(DataError, match=r"no row has metadata\.track_id"):
        make_dm(jsonl_root, group_key="track_id")
    with pytest.raises(DataError, match="class-folder layout has none"):
        make_dm(folder_root, group_key="track_id")
