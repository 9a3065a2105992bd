"""No batch too small to train on: a train split of ``k x batch + 1`` rows.

Such a split once ended epoch 0 with a last batch of one image, which BatchNorm
cannot train on. Training now drops the incomplete last batch, and the sampler's
epoch, the loader's length, the learning-rate schedule and each rank's share
agree on it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from classifier_training.config import load_data_config
from classifier_training.core.readers import DataError
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.sampler import (
    ShuffleSampler,
    TrackingWeightedRandomSampler,
    draws_per_rank,
)
from classifier_training.models.classifier import ImageClassifier
from classifier_training.models.optim import warmup_cosine
from tests.helpers import class_image, make_jsonl_dataset, quiet_trainer, run_train
from tests.test_ddp import REPO, draws, record_draws

BATCH = 4
#: 4 x 4 + 1 train rows: one row over a whole number of batches.
LABELS, PER_CLASS = ("", "7", "23", "5"), 4
ROWS = len(LABELS) * PER_CLASS + 1
MIN_LR_RATIO = 0.01


def one_row_over(root: Path) -> Path:
    """A dataset whose train split has ``4 x BATCH + 1`` rows (a fifth image of
    the empty label); under two ranks each gets ``2 x BATCH + 1``."""
    make_jsonl_dataset(root, LABELS, per_class=PER_CLASS, size=24)
    class_image(0, 99).save(root / "train" / "images" / "extra.png")
    row = {"image": "images/extra.png", "prefix": "jersey number", "suffix": ""}
    with (root / "train" / "annotations.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")
    return root


def datamodule(root: Path, **values: Any) -> ImageFolderDataModule:
    config = {"data_root": root, "image_size": 24, "batch_size": BATCH}
    config.update(num_workers=0, augment_on="workers", **values)
    dm = ImageFolderDataModule(load_data_config(config), arch="resnet18")
    dm.setup("fit")
    return dm


# -- the rule -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("draws_asked", "world", "batch", "per_rank"),
    [
        (17, 1, 4, 16),  # the last row is left out
        (17, 2, 4, 8),  # 9 per rank: 8 in whole batches
        (15, 2, 4, 8),  # 8 per rank: the shuffle repeats one row
        (16, 1, 4, 16),
        (3, 1, 4, 3),  # less than one batch: the epoch's one batch
        (5, 2, 4, 3),  # 3 per rank
    ],
)
def test_each_rank_draws_whole_batches(
    draws_asked: int, world: int, batch: int, per_rank: int
) -> None:
    assert draws_per_rank(draws_asked, world, batch) == per_rank


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("kind", ["shuffle", "weighted"])
def test_samplers_yield_whole_batches_per_rank(world: int, kind: str) -> None:
    sampler = (
        ShuffleSampler(ROWS, seed=1)
        if kind == "shuffle"
        else TrackingWeightedRandomSampler(torch.ones(ROWS), ROWS, seed=1)
    )
    shares = []
    for rank in range(world):
        sampler.distribute(world, rank, BATCH)
        sampler.set_epoch(3)
        shares.append(list(sampler))
        assert len(sampler) == len(shares[-1]) == 16 // world
    # The epoch recorded is exactly what the ranks train on together.
    assert len(sampler.drawn_indices) == 16
    assert sorted(i for share in shares for i in share) == sorted(sampler.drawn_indices)
    if kind == "shuffle":  # one row left out, none repeated
        assert len(set(sampler.drawn_indices)) == 16


def test_the_shuffle_leaves_a_different_row_out_each_epoch() -> None:
    sampler = ShuffleSampler(ROWS, seed=0)
    sampler.distribute(1, 0, BATCH)
    left_out = set()
    for epoch in range(6):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(set(drawn)) == 16
        (missing,) = set(range(ROWS)) - set(drawn)
        left_out.add(missing)
    assert len(left_out) > 1


# -- one process, in this process ---------------------------------------------------
@pytest.mark.parametrize("mode", ["auto", "disabled"])
def test_fit_on_one_row_over_drops_it_and_the_schedule_agrees(
    tmp_path: Path, mode: str
) -> None:
    """Two epochs of ``4 x 4 + 1`` rows: 4 steps each, the schedule planned 8 and
    ends at its floor, the sampler recorded the 16 draws trained on."""
    dm = datamodule(one_row_over(tmp_path / "data"), sampler={"mode": mode})
    assert len(dm.datasets["train"]) == ROWS
    model = ImageClassifier(
        dm.num_classes,
        class_names=dm.class_names,
        pretrained=False,
        optimizer=lambda groups: torch.optim.SGD(groups, lr=0.1),
        scheduler=functools.partial(
            warmup_cosine, warmup_epochs=0.5, min_lr_ratio=MIN_LR_RATIO
        ),
    )
    trainer = quiet_trainer(max_epochs=2, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    assert trainer.num_training_batches == 4
    assert trainer.estimated_stepping_batches == trainer.global_step == 8
    (optimizer,) = trainer.optimizers
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * MIN_LR_RATIO)
    assert len(dm.draw_sampler.drawn_indices) == 16


def test_a_split_smaller_than_one_batch_is_one_batch_per_epoch(
    tmp_path: Path,
) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("a", "b"), per_class=3)
    dm = datamodule(root, batch_size=64)
    loader = dm.train_dataloader()
    assert dm.draw_sampler.batch_size == 6
    assert len(loader) == 1
    (batch,) = list(loader)
    assert len(batch["labels"]) == 6
    # Two processes: three images each, in one batch of three.
    sampler = dm.draw_sampler
    sampler.distribute(2, 1, 64)
    assert (len(sampler), sampler.batch_size, sampler.total_size) == (3, 3, 6)


def test_one_image_per_process_is_refused_in_one_line(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", ("a", "b"), per_class=2)
    dm = datamodule(root, sampler={"num_samples": 1})
    with pytest.raises(DataError) as caught:
        dm.train_dataloader()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "data.sampler.num_samples=1: each of the 1 training process(es) would draw "
        "one image per epoch"
    )


# -- through the CLI: one process and two -------------------------------------------
FAST = [
    "data.image_size=24",  # the last feature map is 1 x 1: BatchNorm needs 2 rows
    f"data.batch_size={BATCH}",
    "data.num_workers=0",
    "trainer.max_epochs=2",
    "trainer.precision=32-true",
    "callbacks=[model_checkpoint,last_checkpoint,sampler_distribution]",  # no plots
]


def finished_steps(run: Path) -> int:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    return int(checkpoint["global_step"])


@pytest.mark.slow
def test_cli_trains_one_row_over_a_whole_number_of_batches(tmp_path: Path) -> None:
    data = one_row_over(tmp_path / "data")
    run = tmp_path / "run"
    run_train(tmp_path, f"data.data_root={data}", f"hydra.run.dir={run}", *FAST)
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2
    assert finished_steps(run) == 2 * 4
    record = json.loads((run / "sampler_distribution.json").read_text())
    assert [epoch["draws"] for epoch in record["epochs"]] == [16, 16]


@pytest.mark.slow
def test_cli_two_processes_train_one_row_over_per_rank(tmp_path: Path) -> None:
    """9 rows per rank: each trains 8, in 2 steps an epoch, on disjoint shares."""
    data = one_row_over(tmp_path / "data")
    run, record = tmp_path / "run", tmp_path / "record"
    run_train(
        tmp_path,
        f"data.data_root={data}",
        f"hydra.run.dir={run}",
        *FAST,
        *record_draws(record),
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        extra_env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )
    assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == 2
    assert finished_steps(run) == 2 * 2
    sampler_record = json.loads((run / "sampler_distribution.json").read_text())
    assert [epoch["draws"] for epoch in sampler_record["epochs"]] == [16, 16]
    for epoch in (0, 1):
        ranks = draws(record, epoch)
        whole = ranks[0]["epoch_indices"]
        assert len(whole) == 16
        assert ranks[0]["rank_indices"] == whole[0::2]
        assert ranks[1]["rank_indices"] == whole[1::2]
