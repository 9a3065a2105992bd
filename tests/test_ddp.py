"""Distributed data-parallel training (``trainer=ddp``) with real processes on the
CPU (gloo), on a tiny dataset whose splits do not divide by two ranks."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from lightning.fabric.plugins.environments import (
    LightningEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from PIL import Image

from classifier_training.checkpoints import load_checkpoint
from classifier_training.config import ConfigError, load_data_config
from classifier_training.data.cache import (
    SHARED_RAM_DIR,
    CacheKind,
    ImageCache,
    build_cache,
)
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.data.dataset import DecodeAndResize
from classifier_training.data.sampler import (
    EpochSampler,
    ShuffleSampler,
    TrackingWeightedRandomSampler,
)
from classifier_training.data.transforms import ResizeToInput
from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.models import ImageClassifier
from classifier_training.train import effective_batch
from classifier_training.train import train as run_training
from classifier_training.training.builders import build_trainer
from tests.helpers import class_image, make_jsonl_dataset, run_train

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
#: The resume runs check the draws only: no artifacts beyond the checkpoints.
DRAWS_ONLY = [
    f"~callbacks.{name}"
    for name in (
        "onnx_export", "confusion_matrix", "training_history", "sample_predictions",
        "model_info", "dataset_statistics", "sampler_distribution",
    )
]  # fmt: skip


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
        assert parts[0] == whole[0::2]
        assert parts[1] == whole[1::2]
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
    return build_trainer(cfg, [], [])


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
    [
        ({}, LightningEnvironment),
        (TORCHRUN_ENV, TorchElasticEnvironment),
        (SLURM_ENV, SLURMEnvironment),
    ],
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
    assert environment.world_size() == 1
    assert environment.global_rank() == 0
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
        *record_draws(record),
        *COMMON,
        *overrides,
        extra_env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )
    return result.stdout


def record_draws(record: Path) -> list[str]:
    """Overrides adding the callback that records each rank's draws to ``record``."""
    return [
        "+callbacks.record._target_=tests.ddp_support.RecordRankDraws",
        f"+callbacks.record.out={record}",
    ]


def train_in_process(out: Path, record: Path, *overrides: str) -> None:
    """One single-process ``train()`` in this process (no interpreter start-up)."""
    GlobalHydra.instance().clear()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(
            "train_demo",
            overrides=[
                f"paths.output_dir={out}",
                *record_draws(record),
                *COMMON,
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    run_training(cfg, out)


def draws(record: Path, epoch: int) -> dict[int, dict[str, list[int]]]:
    """Each rank's record of ``epoch``, by rank."""
    found = {}
    for path in sorted(record.glob(f"draws_rank*_epoch{epoch}.json")):
        data = json.loads(path.read_text())
        found[data["rank"]] = data
    return found


def single_process_loss(checkpoint: Path, data: Path, split: str) -> float:
    """Mean cross-entropy of the checkpoint's network over every row of ``split``."""
    network = load_checkpoint(checkpoint).network
    config = {"data_root": data, "image_size": 32, "num_workers": 0}
    datamodule = ImageFolderDataModule(load_data_config(config), arch="resnet18")
    datamodule.setup("fit")
    loader = (
        datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    )
    total, rows = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            logits = network(batch["images"])
            total += float(F.cross_entropy(logits, batch["labels"], reduction="sum"))
            rows += len(batch["labels"])
    assert rows == 9
    return total / rows


class DDPRun(NamedTuple):
    data: Path
    cwd: Path
    run: Path
    record: Path
    stdout: str


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> DDPRun:
    """Two epochs in two processes, every artifact callback on."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = make_jsonl_dataset(
        tmp / "data", per_class=PER_CLASS, eval_per_class=EVAL_PER_CLASS, size=32
    )
    cwd = tmp / "cwd"
    cwd.mkdir()
    run, record = cwd / "run", tmp / "record"
    stdout = train(
        cwd, run, record, f"data.data_root={data}", *TWO_RANKS,
        "trainer.max_epochs=2",
    )  # fmt: skip
    return DDPRun(data, cwd, run, record, stdout)


@pytest.mark.slow
def test_two_processes_write_one_run_once_with_single_process_metrics(
    ddp_run: DDPRun, tmp_path: Path
) -> None:
    run, record = ddp_run.run, ddp_run.record
    # One run folder (no second dated one from rank 1), each artifact once.
    assert sorted(p.name for p in ddp_run.cwd.iterdir()) == ["run"]
    assert ddp_run.stdout.count("test top-1:") == 1  # the summary, by rank 0 only
    assert ddp_run.stdout.count("run folder:") == 1
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1's log, same folder
    files = [p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()]
    for name in (
        "metrics.json",
        "model.onnx",
        "labels_mapping.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "sampler_distribution.json",
        "eval/test/confusion_matrix.png",
        "epoch_001/sample_predictions.png",
        "training_history/loss.png",
        "model_info.json",
        "dataset_stats.json",
        ".hydra/config.yaml",
    ):
        assert files.count(name) == 1, name
    for split in ("val", "test"):  # the confusion matrices count all ranks' rows
        matrix = json.loads((run / f"eval/{split}/confusion_matrix.json").read_text())
        assert sum(map(sum, matrix["matrix"])) == 9
    assert not [f for f in files if ".tmp" in f]  # no half-written file left
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["batch"] == {
        "per_device": 4,
        "devices": 2,
        "nodes": 1,
        "accumulate_grad_batches": 1,
        "effective": 8,
    }
    assert metrics["epochs_completed"] == 2

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
    assert any("running_mean" in key for key in ema[0])  # buffers are averaged too
    for key in ema[0]:
        assert torch.equal(ema[0][key], ema[1][key]), key

    # metrics.json (2 ranks, 9 rows per split) = a single-process evaluation.
    for split, stage in (("val", "val"), ("test", "test")):
        out = tmp_path / f"eval_{split}"
        args = ["--model", str(run / "checkpoints/best.ckpt"), "--split", split]
        args += ["--data-root", str(ddp_run.data), "--out", str(out)]
        assert evaluate_main(args) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["num_rows"] == 9
        assert metrics[stage]["acc_top1"] == pytest.approx(summary["top1"], abs=1e-6)
        assert metrics[stage]["acc_top5"] == pytest.approx(summary["top5"], abs=1e-6)
        recall = {k: v["recall"] for k, v in summary["per_class"].items()}
        assert metrics[stage]["per_class_acc"] == pytest.approx(recall, abs=1e-6)
        loss = single_process_loss(run / "checkpoints/best.ckpt", ddp_run.data, split)
        assert metrics[stage]["loss"] == pytest.approx(loss, abs=1e-6)
        # The post-fit tables reuse the ranks' logits, gathered in file order.
        # (metrics.json adds each class's train count, a training-only fact.)
        for name, row in summary["per_class"].items():
            ours = metrics[stage]["per_class"][name]
            assert {k: ours[k] for k in row} == pytest.approx(row), name
        mistakes = metrics[stage]["confident_mistakes"]
        assert [m["where"] for m in mistakes] == [
            m["where"] for m in summary["confident_mistakes"]
        ]
        for ours, theirs in zip(mistakes, summary["confident_mistakes"], strict=True):
            assert ours == {**theirs, "confidence": pytest.approx(theirs["confidence"])}


@pytest.mark.slow
def test_resumed_runs_draw_what_the_uninterrupted_run_drew(
    ddp_run: DDPRun, tmp_path: Path
) -> None:
    """Stopped after epoch 0, resumed to epoch 1 in one and in two processes: the
    epoch-1 draws equal the uninterrupted two-process run's (with 16 draws an
    epoch is the same for 1 and 2 ranks; 2 ranks take the same shares)."""
    root = f"data.data_root={ddp_run.data}"
    short = tmp_path / "short"
    train_in_process(short, tmp_path / "short_record", root, *DRAWS_ONLY,
                     "trainer.max_epochs=1")  # fmt: skip
    last = short / "checkpoints" / "last.ckpt"
    resume = [root, *DRAWS_ONLY, "trainer.max_epochs=2", f"ckpt_path={last}"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_in_process(tmp_path / "run_one", one, *resume)
    train(ddp_run.cwd, tmp_path / "run_two", two, *resume, *TWO_RANKS)
    uninterrupted = draws(ddp_run.record, 1)
    for record, ranks in ((one, 1), (two, 2)):
        assert not draws(record, 0)  # epoch 0 is not trained again
        resumed = draws(record, 1)
        assert sorted(resumed) == list(range(ranks))
        for rank, drawn in resumed.items():
            assert drawn["epoch_indices"] == uninterrupted[0]["epoch_indices"]
            if ranks == 2:
                assert drawn["rank_indices"] == uninterrupted[rank]["rank_indices"]


# -- the image cache, shared by the processes of one machine ----------------------
class CountingLoader:
    """Decodes like the real first stage, counting (slowly) what it decodes."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, path: Path) -> Image.Image:
        with self.lock:
            self.calls += 1
        time.sleep(0.05)  # long enough for two builders to overlap
        return DecodeAndResize(ResizeToInput(16, "squash", (0.5, 0.5, 0.5)))(path)


def images(folder: Path, count: int = 6) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"{i}.png")
        class_image(i % 3, i, 20).save(paths[-1])
    return paths


def build_twice_at_once(
    paths: list[Path], kind: CacheKind, cache_dir: Path, shared_by: int
) -> tuple[list[ImageCache], int]:
    """Two builders (as two ranks would) ask for the same cache at the same time."""
    loader = CountingLoader()
    start = threading.Barrier(2)
    built: list[ImageCache] = []

    def rank() -> None:
        start.wait(timeout=30)
        cache = build_cache(
            paths, loader, 16, kind, cache_dir, "train", {}, 1, shared_by=shared_by
        )
        built.append(cache)

    threads = [threading.Thread(target=rank) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return built, loader.calls


def test_disk_cache_is_written_once_while_the_other_rank_waits(
    tmp_path: Path,
) -> None:
    paths = images(tmp_path / "img")
    built, decodes = build_twice_at_once(paths, "disk", tmp_path / "cache", 1)
    assert decodes == len(paths)  # one build, not one per rank
    assert len(built) == 2
    assert built[0].file == built[1].file
    assert np.array_equal(built[0].array, built[1].array)


def test_ram_cache_of_several_ranks_is_one_shared_memory_file(
    tmp_path: Path,
) -> None:
    paths = images(tmp_path / "img")
    built, decodes = build_twice_at_once(paths, "ram", tmp_path / "unused", 2)
    try:
        assert decodes == len(paths)
        assert [c.kind for c in built] == ["ram", "ram"]
        file = built[0].file
        assert file is not None
        assert file == built[1].file
        assert file.parent.parent == SHARED_RAM_DIR  # memory, not disk
        assert np.array_equal(built[0].array, built[1].array)
        assert not (tmp_path / "unused").exists()
    finally:
        for cache in built:
            if cache.file is not None:
                cache.file.unlink(missing_ok=True)
                cache.file.with_suffix(".json").unlink(missing_ok=True)
                stem = cache.file.stem.rsplit("-", 1)[0]
                (cache.file.parent / f".{stem}.lock").unlink(missing_ok=True)


def test_scale_lr_with_batch_applies_the_linear_rule() -> None:
    def model(scale: bool) -> ImageClassifier:
        return ImageClassifier(
            3,
            pretrained=False,
            optimizer=functools.partial(torch.optim.SGD, lr=0.1),
            scale_lr_with_batch=scale,
            lr_reference_batch=256,
        )

    scaled, plain = model(True), model(False)
    for m in (scaled, plain):
        m.effective_batch_size = 512  # e.g. 64 per device x 8 GPUs
    assert [g["lr"] for g in scaled.configure_optimizers().param_groups] == [0.2, 0.2]
    assert [g["lr"] for g in plain.configure_optimizers().param_groups] == [0.1, 0.1]
    scaled.effective_batch_size = None
    with pytest.raises(ConfigError, match="scale_lr_with_batch"):
        scaled.configure_optimizers()


def test_a_resumed_data_module_keeps_the_checkpoints_seed(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data")
    config = load_data_config({"data_root": root, "image_size": 24})
    first = ImageFolderDataModule(config, arch="resnet18", seed=7)
    first.setup("fit")
    state = first.state_dict()
    assert state["sampler_seed"] == 7
    resumed = ImageFolderDataModule(config, arch="resnet18", seed=8)
    resumed.setup("fit")
    resumed.load_state_dict(state)
    for sampler in (first.draw_sampler, resumed.draw_sampler):
        sampler.set_epoch(3)
    assert list(resumed.draw_sampler) == list(first.draw_sampler)
    assert resumed.draw_sampler.epoch_digest() == first.draw_sampler.epoch_digest()
