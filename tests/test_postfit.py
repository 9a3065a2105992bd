"""The post-fit step reuses the logits of ``trainer.validate``/``trainer.test``:
each row once, in file order, whatever share of the rows each rank evaluated."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

from classifier_training.config import load_data_config
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models import ImageClassifier
from classifier_training.training.postfit import EvalLogits, Share, in_file_order
from tests.helpers import make_jsonl_dataset, quiet_trainer


def shares(rows: int, world: int) -> list[Share]:
    """Each rank's share as the evaluation sampler deals it, row ``i`` scoring
    ``[i, -i]`` and labelled ``i % 3``."""
    out = []
    for rank in range(world):
        sampler = UnrepeatedDistributedSampler(
            range(rows), num_replicas=world, rank=rank, shuffle=False
        )
        indices = np.asarray(list(sampler), dtype=np.int64)
        logits = np.stack([indices, -indices], axis=1).astype(np.float32)
        out.append((indices, logits, indices % 3))
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_shares_go_back_into_file_order(world: int) -> None:
    parts = shares(7, world)
    if world > 1:  # ranks took every world-th row: the shares interleave
        assert parts[0][0].tolist()[:2] == [0, world]
    logits, targets = in_file_order(parts, 7)
    assert logits[:, 0].tolist() == list(range(7))
    assert logits[:, 1].tolist() == [-i for i in range(7)]
    assert targets.tolist() == [i % 3 for i in range(7)]


def test_shares_that_miss_or_repeat_a_row_are_refused() -> None:
    parts = shares(7, 2)
    with pytest.raises(
        RuntimeError, match=r"7 rows \(7 distinct\), not each of 8 once"
    ):
        in_file_order(parts, 8)  # row 7 missing
    padded = [*parts, parts[1]]  # DistributedSampler's padding repeats rows
    with pytest.raises(
        RuntimeError, match=r"10 rows \(7 distinct\), not each of 7 once"
    ):
        in_file_order(padded, 7)


def test_validate_and_test_logits_are_kept_and_fit_is_left_alone(
    tmp_path: Path,
) -> None:
    root = make_jsonl_dataset(tmp_path / "data", per_class=4, eval_per_class=3)
    config = {"data_root": root, "image_size": 24, "batch_size": 4, "num_workers": 0}
    datamodule = ImageFolderDataModule(load_data_config(config), arch="resnet18")
    datamodule.setup("fit")
    model = ImageClassifier(
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        arch="resnet18",
        pretrained=False,
        optimizer=functools.partial(torch.optim.SGD, lr=0.01),
    )
    eval_logits = EvalLogits()
    trainer = quiet_trainer(max_epochs=1, callbacks=[eval_logits])
    trainer.fit(model, datamodule=datamodule)
    assert eval_logits.splits == {}  # fit's validation epochs are not kept
    trainer.validate(model, datamodule=datamodule, verbose=False)
    trainer.test(model, datamodule=datamodule, verbose=False)
    assert sorted(eval_logits.splits) == ["test", "val"]
    model.eval()
    for split in ("val", "test"):
        dataset = datamodule.datasets[split]
        with torch.no_grad():  # row by row, in file order
            expected = torch.cat(
                [model(dataset[i]["images"][None]) for i in range(len(dataset))]
            )
        logits, targets = eval_logits.splits[split]
        assert targets.tolist() == list(dataset.targets)
        assert len(set(targets.tolist())) == 3
        np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-5)
