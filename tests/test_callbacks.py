"""The callbacks in real tiny Lightning runs on the CPU (one shared run per module)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import onnxruntime as ort
import pytest
import torch
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import classifier_training.models  # noqa: F401  (registers model configs)
from classifier_training.callbacks import (
    AugmentationPreviewCallback,
    ConfusionMatrixCallback,
    DatasetStatisticsCallback,
    EMACallback,
    ModelInfoCallback,
    ONNXExportCallback,
    SamplePredictionsCallback,
    SamplerDistributionCallback,
    TrainingHistoryCallback,
)
from classifier_training.callbacks.confusion_matrix import (
    plot_confusion_matrix,
    top_confusions,
)
from classifier_training.callbacks.plotting import read_history
from classifier_training.callbacks.sampler import drift_test
from classifier_training.callbacks.visualization import choose_fixed_indices
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.export import main as export_main
from classifier_training.train import build_callbacks, build_datamodule, build_model
from classifier_training.training.builders import build_trainer
from classifier_training.types import TrainingData
from tests.helpers import make_jsonl_dataset

LABELS = ("", "7", "23")


def compose_demo(overrides: list[str]) -> DictConfig:
    """The demo recipe with test overrides (tiny images, no workers, no logger)."""
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        return compose(
            config_name="train_demo",
            overrides=[
                "data.image_size=24",
                "data.batch_size=6",
                "data.num_workers=0",
                "callbacks.rich_progress_bar=null",
                "logging=none",  # the run fixture gives the trainer a CSV logger
                *overrides,
            ],
        )


class SanityProbe(Callback):
    """Records what exists in the run folder while Lightning's sanity check runs."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.seen_during_sanity: list[str] | None = None

    def on_validation_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        if trainer.sanity_checking:
            self.seen_during_sanity = sorted(
                str(p.relative_to(self.output_dir))
                for p in self.output_dir.rglob("*")
                if "epoch_" in str(p) or "history" in p.name or "sampler" in p.name
            )


@dataclass
class Run:
    out: Path
    data: Path
    trainer: L.Trainer
    model: L.LightningModule
    datamodule: ImageFolderDataModule
    callbacks: list[Callback]
    probe: SanityProbe

    def get(self, kind: type[Any]) -> Any:
        (found,) = [c for c in self.callbacks if isinstance(c, kind)]
        return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Two epochs of the demo recipe, every callback of the default config on."""
    root = tmp_path_factory.mktemp("callbacks")
    data = make_jsonl_dataset(
        root / "data", LABELS, per_class=6, eval_per_class=3, size=24
    )
    out = root / "run"
    cfg = compose_demo(
        [f"data.data_root={data}", f"paths.output_dir={out}", "trainer.max_epochs=2"]
    )
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    callbacks = build_callbacks(cfg)
    probe = SanityProbe(out)
    trainer = build_trainer(
        cfg,
        [*callbacks, probe],
        [CSVLogger(out, name="", version="")],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    trainer.validate(model, datamodule=datamodule, ckpt_path="best", verbose=False)
    trainer.test(model, datamodule=datamodule, ckpt_path="best", verbose=False)
    return Run(out, data, trainer, model, datamodule, callbacks, probe)


# -- the run folder ------------------------------------------------------------
def test_default_config_enables_every_callback(run: Run) -> None:
    kinds = {type(c) for c in run.callbacks}
    assert {
        AugmentationPreviewCallback,
        EMACallback,
        ONNXExportCallback,
        ConfusionMatrixCallback,
        TrainingHistoryCallback,
        SamplePredictionsCallback,
        ModelInfoCallback,
        DatasetStatisticsCallback,
        SamplerDistributionCallback,
    } <= kinds


def test_each_callback_can_be_switched_off() -> None:
    names = (
        "ema",
        "onnx_export",
        "confusion_matrix",
        "training_history",
        "sample_predictions",
        "model_info",
        "dataset_statistics",
        "sampler_distribution",
        "augmentation_preview",
    )
    for config in ("callbacks=default",):
        cfg = compose_demo(
            ["data.data_root=/x", "paths.output_dir=/y", config]
            + [f"callbacks.{n}=null" for n in names]
        )
        assert not any(cfg.callbacks.get(n) for n in names)
        kinds = {type(c) for c in build_callbacks(cfg)}
        assert not kinds & {EMACallback, ONNXExportCallback, ConfusionMatrixCallback}


def test_run_folder_matches_the_seed_layout(run: Run) -> None:
    expected = [
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "model.onnx",
        "labels_mapping.json",
        "model_info.json",
        "dataset_stats.json",
        "dataset_stats.png",
        "sampler_distribution.json",
        "sampler_distribution.png",
        "training_history/loss.png",
        "training_history/accuracy.png",
        "training_history/learning_rate.png",
        "metrics.csv",
        "eval/val/confusion_matrix.png",
        "eval/test/confusion_matrix.png",
        "augmentation_preview.png",
    ]
    for epoch in (0, 1):
        expected += [
            f"epoch_{epoch:03d}/confusion_matrix.png",
            f"epoch_{epoch:03d}/confusion_matrix.json",
            f"epoch_{epoch:03d}/sample_predictions.png",
        ]
    missing = [p for p in expected if not (run.out / p).is_file()]
    assert not missing
    assert not (run.out / "epoch_002").exists()


def test_no_temporary_files_are_left(run: Run) -> None:
    leftovers = [p for p in run.out.rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_pngs_open_with_sensible_sizes(run: Run) -> None:
    pngs = sorted(run.out.rglob("*.png"))
    assert len(pngs) == 12
    for png in pngs:
        with Image.open(png) as image:
            image.verify()  # a truncated file fails here
        with Image.open(png) as image:
            width, height = image.size
        assert 300 <= width <= 12000, png
        assert 200 <= height <= 12000, png


def test_augmentation_preview_is_repeatable_and_leaves_the_random_stream(
    run: Run, tmp_path: Path
) -> None:
    """8 fixed training images x 6 draws; drawing again gives the same picture
    and leaves torch's generator where it was (training draws are unchanged)."""
    written = (run.out / "augmentation_preview.png").read_bytes()
    callback = run.get(AugmentationPreviewCallback)
    rows = callback.preview_rows(run.trainer, run.model)
    assert len(rows) == 8
    assert all(len(draws) == 6 for _, draws in rows)
    assert [label for label, _ in rows] == [
        run.model.class_names[run.datamodule.class_to_idx[s.label]] or "<empty>"
        for s in (
            run.datamodule.split_samples("train")[i]
            for i in choose_fixed_indices(run.datamodule.datasets["train"].targets, 8)
        )
    ]
    # The draws are random augmentations: not all alike.
    first = rows[0][1]
    assert any(not np.array_equal(first[0].image, t.image) for t in first[1:])
    again = AugmentationPreviewCallback(tmp_path)
    state = torch.get_rng_state()
    again.on_fit_start(run.trainer, run.model)
    assert torch.equal(torch.get_rng_state(), state)
    assert (tmp_path / "augmentation_preview.png").read_bytes() == written


def test_nothing_is_written_during_the_sanity_check(run: Run) -> None:
    assert run.probe.seen_during_sanity == []


# -- confusion matrix ----------------------------------------------------------
def _logged_history(run: Run) -> tuple[list[dict[str, float]], list[Any]]:
    with (run.out / "metrics.csv").open(newline="") as handle:
        return read_history(csv.DictReader(handle))


def test_confusion_matrix_uses_the_validation_predictions(run: Run) -> None:
    epochs, _ = _logged_history(run)
    assert len(epochs) == 2
    for row in epochs:
        epoch = int(row["epoch"])
        saved = json.loads(
            (run.out / f"epoch_{epoch:03d}/confusion_matrix.json").read_text()
        )
        matrix = np.asarray(saved["matrix"])
        assert matrix.sum() == len(run.datamodule.datasets["val"])
        # Same numbers as the accuracy the model logged for that epoch.
        assert np.trace(matrix) / matrix.sum() == pytest.approx(row["val/acc_top1"])
        assert saved["class_names"] == ["<empty>", "23", "7"]


def load_best(run: Run) -> L.LightningModule:
    """A fresh model holding ``best.ckpt``'s weights, in eval mode."""
    checkpoint = torch.load(
        run.out / "checkpoints/best.ckpt", map_location="cpu", weights_only=True
    )
    model = type(run.model)(**{**checkpoint["hyper_parameters"], "pretrained": False})
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def test_eval_confusion_matrices_match_the_final_evaluation(run: Run) -> None:
    test = json.loads((run.out / "eval/test/confusion_matrix.json").read_text())
    # Counted here from best.ckpt's own predictions on the test images.
    dataset = run.datamodule.datasets["test"]
    items = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        logits = load_best(run)(torch.stack([item["images"] for item in items]))
    expected = np.zeros((3, 3), dtype=int)
    for item, predicted in zip(items, logits.argmax(dim=1).tolist(), strict=True):
        expected[int(item["labels"]), predicted] += 1
    assert expected.sum() == 9
    assert test["matrix"] == expected.tolist()


def test_confusion_matrix_stays_readable_with_many_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sizes = {}
    for k in (5, 120):
        matrix = rng.integers(0, 3, (k, k)) * (rng.random((k, k)) < 0.05)
        matrix[np.diag_indices(k)] += 20
        names = [f"class_{i}" for i in range(k)]
        figure = plot_confusion_matrix(matrix, names, "test")
        labels = [
            t for ax in figure.axes for t in ax.texts if t.get_text().startswith("c")
        ]
        assert len(labels) == 2 * k + k  # columns of both panels, rows once
        assert min(t.get_fontsize() for t in labels) >= 5
        path = tmp_path / f"cm{k}.png"
        figure.savefig(path, dpi=100)
        with Image.open(path) as image:
            sizes[k] = image.size
    # More classes, larger canvas: each of the 120 rows gets >= 12 px.
    assert sizes[120][1] >= 120 * 12
    assert sizes[120][0] > sizes[5][0]


def test_top_confusions_lists_the_largest_mistakes_first() -> None:
    matrix = np.array([[5, 2, 0], [0, 4, 3], [1, 0, 6]])
    pairs = top_confusions(matrix, ["a", "b", "c"])
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("b", "c", 3),
        ("a", "b", 2),
        ("c", "a", 1),
    ]


# -- training history, samples, model info, statistics, sampler --------------------
def test_training_history_is_drawn_from_the_logged_metrics(run: Run) -> None:
    epochs, lr_points = _logged_history(run)
    assert [r["epoch"] for r in epochs] == [0, 1]
    for row in epochs:
        for split in ("train", "val"):
            for key in ("loss", "acc_top1", "acc_top5"):
                assert f"{split}/{key}" in row
    assert [step for step, _ in lr_points] == [0, 3]  # 3 steps per epoch
    assert all(lr > 0 for _, lr in lr_points)
    # No second history file: the curves come from metrics.csv alone.
    assert sorted(p.name for p in (run.out / "training_history").iterdir()) == [
        "accuracy.png",
        "learning_rate.png",
        "loss.png",
    ]


def test_read_history_merges_rows_of_an_epoch() -> None:
    rows = [
        {
            "epoch": "0",
            "step": "2",
            "train/loss": "",
            "val/loss": "1.5",
            "lr-AdamW": "",
        },
        {
            "epoch": "0",
            "step": "2",
            "train/loss": "2.0",
            "val/loss": "",
            "lr-AdamW": "",
        },
        {
            "epoch": "1",
            "step": "3",
            "train/loss": "",
            "val/loss": "",
            "lr-AdamW": "0.1",
        },
        {"epoch": "1", "step": "5", "train/loss": "1.0", "val/loss": "nan"},
    ]
    epochs, lr = read_history(rows)
    assert epochs == [
        {"epoch": 0.0, "val/loss": 1.5, "train/loss": 2.0},
        {"epoch": 1.0, "train/loss": 1.0},
    ]
    assert lr == [(3.0, 0.1)]


def test_sample_predictions_show_a_fixed_spread_of_classes(run: Run) -> None:
    callback = run.get(SamplePredictionsCallback)
    targets = run.datamodule.datasets["val"].targets
    fixed = callback._fixed_indices
    assert fixed == set(choose_fixed_indices(targets, 16))
    assert {targets[i] for i in fixed} == {0, 1, 2}  # every class represented
    assert [p.index for p in callback._fixed] == sorted(fixed)
    mistakes = callback._mistakes
    assert all(p.pred != p.label for p in mistakes)
    confidences = [p.confidence for p in mistakes]
    assert confidences == sorted(confidences, reverse=True)


def test_choose_fixed_indices_spreads_over_classes() -> None:
    targets = [c for c in range(10) for _ in range(3)]
    picked = choose_fixed_indices(targets, 5)
    assert len(picked) == 5
    assert len({targets[i] for i in picked}) == 5
    assert choose_fixed_indices([0, 0, 1], 8) == [0, 1, 2]


def test_model_info(run: Run) -> None:
    info = json.loads((run.out / "model_info.json").read_text())
    network = run.model.network
    assert isinstance(network, torch.nn.Module)
    assert info["params_total"] == sum(p.numel() for p in network.parameters())
    assert info["params_trainable"] == info["params_total"]
    assert info["size_mb"] == pytest.approx(info["params_total"] * 4 / 1e6, rel=0.01)
    assert info["input_shape"] == [1, 3, 24, 24]
    assert info["arch"] == "resnet18"
    # Lightning's ModelSummary gives the figure counted directly on the network,
    # and both equal the count by hand.
    counter = FlopCounterMode(display=False)
    network.eval()
    with torch.no_grad(), counter:
        network(torch.zeros(1, 3, 24, 24))
    assert info["flops"] == counter.get_total_flops()
    assert info["flops"] == RESNET18_FLOPS_24PX_3_CLASSES
    assert info["gmacs"] == pytest.approx(info["flops"] / 2e9, abs=1e-4)


def conv_flops(c_in: int, c_out: int, kernel: int, side: int) -> int:
    """2 FLOPs per multiply-add of a convolution with a square output."""
    return 2 * c_in * c_out * kernel * kernel * side * side


# ResNet-18 on a 24 px input, by hand: the stem (7x7, stride 2) gives 12 px, the max
# pool 6 px, then layers 1-4 run at 6, 3, 2 and 1 px; layers 2-4 open with a
# strided 3x3 and a 1x1 shortcut. The head is a 512 x 3 matrix product.
RESNET18_FLOPS_24PX_3_CLASSES = (
    conv_flops(3, 64, 7, 12)
    + 4 * conv_flops(64, 64, 3, 6)
    + conv_flops(64, 128, 3, 3) + 3 * conv_flops(128, 128, 3, 3)
    + conv_flops(64, 128, 1, 3)
    + conv_flops(128, 256, 3, 2) + 3 * conv_flops(256, 256, 3, 2)
    + conv_flops(128, 256, 1, 2)
    + conv_flops(256, 512, 3, 1) + 3 * conv_flops(512, 512, 3, 1)
    + conv_flops(256, 512, 1, 1)
    + 2 * 512 * 3
)  # fmt: skip


def test_labels_mapping_of_the_run(run: Run) -> None:
    mapping = json.loads((run.out / "labels_mapping.json").read_text())
    imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    assert mapping == {
        "format_version": 5,
        "arch": "resnet18",
        "class_names": ["", "23", "7"],  # sorted as strings
        "image_size": 24,
        "resize_mode": "squash",
        "mean": imagenet_mean,
        "std": imagenet_std,
        "input_name": "input",
        "output_name": "logits",
        "temperature": 1.0,  # the fit alone does not calibrate (train.py does)
        "train_counts": list(run.datamodule.contract.train_counts or ()),
        "logit_adjust_tau": 0.0,
        "num_classes": 3,
        "class_to_idx": {"": 0, "23": 1, "7": 2},
        "idx_to_class": {"0": "", "1": "23", "2": "7"},
        "normalization": {"mean": imagenet_mean, "std": imagenet_std},
    }
    assert mapping == run.datamodule.contract.to_json()


def test_dataset_statistics(run: Run) -> None:
    stats = json.loads((run.out / "dataset_stats.json").read_text())
    assert stats["num_classes"] == 3
    assert stats["splits"]["train"]["class_counts"] == {"<empty>": 6, "23": 6, "7": 6}
    assert stats["splits"]["val"]["rows"] == 9
    assert stats["imbalance_ratio"] == 1.0
    variant = stats["splits"]["train"]["metadata"]["fields"]["variant"]
    assert variant["kind"] == "categorical"
    assert variant["counts"] == {"0": 9, "1": 9}
    assert stats["excluded_rows"]["val"]["count"] == 0


def test_sampler_distribution(run: Run) -> None:
    saved = json.loads((run.out / "sampler_distribution.json").read_text())
    assert saved["expected_share"] == pytest.approx([1 / 3] * 3, abs=1e-5)
    assert [r["epoch"] for r in saved["epochs"]] == [0, 1]
    for record in saved["epochs"]:
        drawn = record["drawn"]
        assert sum(drawn) == 18
        # Pearson chi-square against 6 expected draws per class; with 2 degrees of
        # freedom the p-value is exp(-chi2 / 2).
        chi2 = sum((o - 6) ** 2 / 6 for o in drawn)
        assert record["chi2"] == pytest.approx(chi2, abs=1e-4)
        assert record["p_value"] == pytest.approx(math.exp(-chi2 / 2), rel=1e-6)


def test_drift_test_flags_only_real_drift() -> None:
    shares = np.full(4, 0.25)
    fair = drift_test(np.array([252, 247, 251, 250]), shares)
    assert fair["p_value"] > 0.5
    skewed = drift_test(np.array([400, 200, 200, 200]), shares)
    assert skewed["p_value"] < 1e-6
    assert skewed["worst_class_index"] == 0
    impossible = drift_test(np.array([5, 5, 1]), np.array([0.5, 0.5, 0.0]))
    assert impossible["p_value"] == 0.0


def test_sampler_drift_is_warned_about(run: Run, tmp_path: Path) -> None:
    from loguru import logger

    sampler = run.datamodule.train_sampler
    assert sampler is not None
    targets = run.datamodule.datasets["train"].targets
    callback = SamplerDistributionCallback(tmp_path, p_threshold=1e-3)
    saved = list(sampler.drawn_indices)
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        # Every draw from class 0: far beyond sampling noise for equal shares.
        sampler.drawn_indices = [i for i, t in enumerate(targets) if t == 0] * 10
        record = callback.check_epoch(run.datamodule, epoch=5)
    finally:
        sampler.drawn_indices = saved
        logger.remove(sink)
    assert record is not None
    assert record["drifted"]
    assert record["worst_class"] == "<empty>"
    callback.write(run.datamodule)
    assert (tmp_path / "sampler_distribution.png").is_file()
    assert any("sampler drift" in m for m in messages)


# -- EMA and ONNX in the full run ----------------------------------------------------
def test_ema_counted_every_step(run: Run) -> None:
    steps = run.trainer.global_step
    assert steps == 2 * 3  # 18 train images, batch 6, 2 epochs
    last = torch.load(
        run.out / "checkpoints/last.ckpt", map_location="cpu", weights_only=True
    )
    assert int(last["averaging_state"]["n_averaged"]) == steps
    ema = run.get(EMACallback)
    assert ema.num_updates == steps
    # The warm-up decay (1 + n) / (10 + n) after n = 6 updates.
    assert ema.current_decay == pytest.approx(7 / 16)
    # validate/test(ckpt_path="best") afterwards scored best.ckpt's own (EMA)
    # weights and left the fit's average alone.
    best = torch.load(
        run.out / "checkpoints/best.ckpt", map_location="cpu", weights_only=True
    )
    model_state = run.model.state_dict()
    for key, value in best["state_dict"].items():
        torch.testing.assert_close(model_state[key], value, msg=key)


def test_checkpoints_carry_the_deployment_contract(run: Run) -> None:
    assert isinstance(run.datamodule, TrainingData)
    checkpoint = torch.load(
        run.out / "checkpoints/best.ckpt", map_location="cpu", weights_only=True
    )
    # Once, in the data module's state (beside the seed of the training draws);
    # no other copy of the classes or sizes.
    state = checkpoint["ImageFolderDataModule"]
    assert state == {
        "deployment_contract": run.datamodule.contract.to_json(),
        "sampler_seed": run.datamodule.seed,
    }
    assert state["deployment_contract"] == json.loads(
        (run.out / "labels_mapping.json").read_text()
    )
    assert "labels_mapping" not in checkpoint
    assert "model_class" not in checkpoint
    assert checkpoint["hyper_parameters"]["class_names"] == ["", "23", "7"]
    assert all(
        k.startswith(("network.", "class_weights")) for k in checkpoint["state_dict"]
    )


def _onnx_logits(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": images})
    return np.asarray(logits)


def test_model_onnx_reproduces_the_best_checkpoint(run: Run) -> None:
    dataset = run.datamodule.datasets["val"]
    images = torch.stack([dataset[i]["images"] for i in range(len(dataset))])
    with torch.no_grad():
        expected = load_best(run)(images).numpy()
    got = _onnx_logits(run.out / "model.onnx", images.numpy())
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_export_cli_on_the_runs_checkpoint(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy" / "model.onnx"
    # Verified on real image files, preprocessed as the labels mapping says.
    pictures = sorted((run.data / "valid" / "images").glob("*.png"))[:3]
    code = export_main(
        [
            str(run.out / "checkpoints/best.ckpt"),
            "--out",
            str(out),
            "--images",
            *map(str, pictures),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "verified" in capsys.readouterr().out
    assert json.loads((out.parent / "labels_mapping.json").read_text()) == json.loads(
        (run.out / "labels_mapping.json").read_text()
    )
    images = np.random.default_rng(0).standard_normal((3, 3, 24, 24)).astype("f4")
    np.testing.assert_allclose(
        _onnx_logits(out, images),
        _onnx_logits(run.out / "model.onnx", images),
        atol=1e-5,
    )


def test_confusion_matrix_goes_to_wandb_when_it_logs(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandb_logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="t")
    model = type(run.model)(
        **{**run.model.hparams, "pretrained": False},
        optimizer=run.model.optimizer_factory,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=[ConfusionMatrixCallback(tmp_path / "run")],
        logger=wandb_logger,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=run.datamodule)
    wandb_logger.experiment.finish()
    logged = list(tmp_path.glob("wandb/*run-*/files/media/images/val/confusion*.png"))
    assert len(logged) == 1
    assert (tmp_path / "run/epoch_000/confusion_matrix.png").is_file()
