"""Distributed data-parallel training (``trainer=ddp``) with real processes on the
CPU (gloo), on a tiny dataset whose splits do not divide by two ranks."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import (
    LightningEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

from classifier_training.config import load_data_config
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.sampler import (
    EpochSampler,
    ShuffleSampler,
    TrackingWeightedRandomSampler,
)
from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.train import effective_batch
from tests.helpers import make_jsonl_dataset, run_train

REPO = Path(__file__).resolve().parents[1]
#: 15 train, 9 valid and 9 test rows: none divides by 2 ranks.
PER_CLASS, EVAL_PER_CLASS = 5, 3
COMMON = [
    "data.image_size=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.sampler.num_samples=16",  # the same epoch for 1 and 2 ranks
    "trainer.log_every_n_steps=1",
    "trainer.precision=32-true",
    "~callbacks.rich_progress_bar",
]
TWO_RANKS = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]


def shares(sampler: EpochSampler, world: int, epoch: int) -> list[list[int]]:
    """Each rank's draws of ``epoch`` under ``world`` ranks."""
    out = []
    for rank in range(world):
        sampler.distribute(world, rank)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


WEIGHTS = torch.rand(15, generator=torch.Generator().manual_seed(0)) + 0.1
SAMPLERS = {
    "shuffle": lambda: ShuffleSampler(15, seed=3),
    "weighted": lambda: TrackingWeightedRandomSampler(WEIGHTS, 15, seed=3),
}


@pytest.mark.parametrize("kind", sorted(SAMPLERS))
def test_ranks_draw_disjoint_shares_of_one_epoch(kind: str) -> None:
    sampler = SAMPLERS[kind]()
    epochs = []
    for epoch in (0, 1):
        parts = shares(sampler, 2, epoch)
        whole = sampler.drawn_indices
        assert len(whole) == 16  # 15 draws rounded up to the 2 ranks
        assert [len(p) for p in parts] == [8, 8]
        # Positions 0, 2, 4... go to rank 0, 1, 3, 5... to rank 1: together the
        # ranks consume exactly the epoch's draws, each draw once.
        assert parts[0] == whole[0::2] and parts[1] == whole[1::2]
        assert sorted(parts[0] + parts[1]) == sorted(whole)
        epochs.append((whole, parts))
    assert epochs[0][0] != epochs[1][0]
    # A fresh sampler (another process, or a resumed run) draws the same epochs.
    assert shares(SAMPLERS[kind](), 2, 1) == epochs[1][1]


def test_the_shuffle_sees_every_row_and_pads_with_its_head() -> None:
    sampler = ShuffleSampler(15, seed=0)
    (whole,) = shares(sampler, 1, 4)
    assert sorted(whole) == list(range(15))
    shares(sampler, 2, 4)
    assert sampler.drawn_indices == whole + whole[:1]


def test_eval_loaders_give_each_row_to_exactly_one_rank(tmp_path: Path) -> None:
    root = make_jsonl_dataset(
        tmp_path / "data", per_class=PER_CLASS, eval_per_class=EVAL_PER_CLASS
    )
    config = load_data_config(
        {"data_root": root, "image_size": 24, "batch_size": 2, "num_workers": 0}
    )
    datamodule = ImageFolderDataModule(config, arch="resnet18", seed=1)
    datamodule.setup("fit")
    seen: list[int] = []
    for rank in (0, 1):
        datamodule.trainer = SimpleNamespace(  # type: ignore[assignment]
            world_size=2, global_rank=rank
        )
        loader = datamodule.val_dataloader()
        assert loader.sampler is not None
        seen += list(loader.sampler)
        assert len(datamodule.train_dataloader()) == 4  # 8 of 16 draws, batch 2
    assert sorted(seen) == list(range(9))  # 5 + 4 rows, none twice


@pytest.fixture
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def ddp_trainer(extra: list[str], output_dir: Path) -> object:
    cfg = compose(
        "train_demo",
        overrides=[
            *TWO_RANKS[:2], "trainer.devices=1", f"paths.output_dir={output_dir}",
            *extra,
        ],
    )  # fmt: skip
    return instantiate(cfg.trainer, logger=False, callbacks=[])


TORCHRUN_ENV = {
    "TORCHELASTIC_RUN_ID": "test",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "GROUP_RANK": "0",
    "WORLD_SIZE": "1",
    "LOCAL_WORLD_SIZE": "1",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29533",
}
SLURM_ENV = {
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_JOB_NAME": "train",
    "SLURM_JOB_ID": "77",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "node001",
}


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, LightningEnvironment), (TORCHRUN_ENV, TorchElasticEnvironment),
     (SLURM_ENV, SLURMEnvironment)],  # fmt: skip
    ids=["local", "torchrun", "slurm"],
)
def test_trainer_ddp_detects_the_launcher_from_its_environment(
    hydra_context: None,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    expected: type,
    tmp_path: Path,
) -> None:
    for key in [*TORCHRUN_ENV, *SLURM_ENV]:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    trainer = ddp_trainer(["trainer.num_nodes=1"], tmp_path)
    connector = trainer._accelerator_connector  # type: ignore[attr-defined]
    environment = connector.cluster_environment
    assert type(environment) is expected
    assert connector.strategy.__class__.__name__ == "DDPStrategy"
    assert environment.world_size() == 1 and environment.global_rank() == 0
    # torchrun and srun start the processes themselves: Lightning must not.
    assert environment.creates_processes_externally == bool(env)
    assert effective_batch(trainer, 16)["effective"] == 16  # type: ignore[arg-type]


def test_effective_batch_counts_devices_nodes_and_accumulation() -> None:
    trainer = SimpleNamespace(num_devices=8, num_nodes=4, accumulate_grad_batches=2)
    batch = effective_batch(trainer, 32)  # type: ignore[arg-type]
    assert batch == {
        "per_device": 32,
        "devices": 8,
        "nodes": 4,
        "accumulate_grad_batches": 2,
        "effective": 2048,
    }


# -- end to end: real processes ---------------------------------------------------
def train(cwd: Path, out: Path, record: Path, *overrides: str) -> str:
    """Run ``classifier-train`` into ``out``, recording each rank's draws."""
    result = run_train(
        cwd,
        f"hydra.run.dir={out}",
        "+callbacks.record._target_=tests.ddp_support.RecordRankDraws",
        f"+callbacks.record.out={record}",
        *COMMON,
        *overrides,
        extra_env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )
    return result.stdout


def draws(record: Path, epoch: int) -> dict[int, dict[str, list[int]]]:
    """Each rank's record of ``epoch``, by rank."""
    found = {}
    for path in sorted(record.glob(f"draws_rank*_epoch{epoch}.json")):
        data = json.loads(path.read_text())
        found[data["rank"]] = data
    return found


@pytest.mark.slow
def test_two_processes_train_once_and_resume_in_order(tmp_path: Path) -> None:
    data = make_jsonl_dataset(
        tmp_path / "data", per_class=PER_CLASS, eval_per_class=EVAL_PER_CLASS,
        size=32,
    )  # fmt: skip
    root = [f"data.data_root={data}"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run, record = cwd / "run", tmp_path / "record"
    stdout = train(cwd, run, record, *root, *TWO_RANKS, "trainer.max_epochs=2")

    # One run folder (no second dated one from rank 1), each artifact once.
    assert sorted(p.name for p in cwd.iterdir()) == ["run"]
    assert stdout.count("test top-1:") == 1  # the summary, printed by rank 0
    assert stdout.count("Results (") == 1
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1's log, same folder
    files = [p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()]
    for name in (
        "metrics.json",
        "model.onnx",
        "labels_mapping.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "sampler_distribution.json",
        ".hydra/config.yaml",
    ):
        assert files.count(name) == 1, name
    assert not [f for f in files if ".tmp" in f]  # no half-written file left
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["batch"] == {
        "per_device": 4,
        "devices": 2,
        "nodes": 1,
        "accumulate_grad_batches": 1,
        "effective": 8,
    }

    # The sampler: disjoint, complete shares; the record counts all ranks' draws.
    sampler_json = json.loads((run / "sampler_distribution.json").read_text())
    for epoch in (0, 1):
        ranks = draws(record, epoch)
        assert sorted(ranks) == [0, 1]
        whole = ranks[0]["epoch_indices"]
        assert whole == ranks[1]["epoch_indices"]  # every rank drew the same epoch
        assert len(whole) == 16
        assert ranks[0]["rank_indices"] == whole[0::2]
        assert ranks[1]["rank_indices"] == whole[1::2]
        assert sampler_json["epochs"][epoch]["draws"] == 16
    assert draws(record, 0)[0]["epoch_indices"] != draws(record, 1)[0]["epoch_indices"]

    # EMA: one model on every rank.
    ema = [torch.load(record / f"ema_rank{r}.pt") for r in (0, 1)]
    assert ema[0].keys() == ema[1].keys()
    for key in ema[0]:
        assert torch.equal(ema[0][key], ema[1][key]), key

    # metrics.json (2 ranks, 9 rows each split) = a single-process evaluation.
    for split, stage in (("valid", "val"), ("test", "test")):
        out = tmp_path / f"eval_{split}"
        args = ["--model", str(run / "checkpoints/best.ckpt"), "--data-root"]
        assert evaluate_main([*args, str(data), "--split", split, "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["num_rows"] == 9
        assert metrics[stage]["acc_top1"] == pytest.approx(summary["top1"], abs=1e-6)
        recall = {k: v["recall"] for k, v in summary["per_class"].items()}
        assert metrics[stage]["per_class_acc"] == pytest.approx(recall, abs=1e-6)

    # Resume: a 1-epoch run continued to 2 epochs draws the uninterrupted epoch 1,
    # whether it continues in one process or in two.
    short, short_record = cwd / "short", tmp_path / "short_record"
    train(cwd, short, short_record, *root, "trainer.max_epochs=1")
    last = short / "checkpoints/last.ckpt"
    for name, ranks in (("one", []), ("two", TWO_RANKS)):
        again = tmp_path / f"resumed_{name}"
        train(
            cwd, cwd / f"resumed_{name}", again, *root, *ranks,
            "trainer.max_epochs=2", f"ckpt_path={last}",
        )  # fmt: skip
        assert not draws(again, 0)  # epoch 0 is not trained again
        resumed = draws(again, 1)
        for rank, record_ in resumed.items():
            assert record_["epoch_indices"] == draws(record, 1)[0]["epoch_indices"]
            if len(resumed) == 2:
                assert record_["rank_indices"] == draws(record, 1)[rank]["rank_indices"]
