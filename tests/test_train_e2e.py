"""End-to-end ``classifier-train`` runs on a tiny generated dataset (CPU)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.synthetic import SynthConfig, generate_dataset
from tests.helpers import make_jsonl_dataset, run_train

FAST = [
    "data.image_size=24",
    "data.batch_size=8",
    "data.num_workers=0",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "~callbacks.rich_progress_bar",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of the built-in synthetic jersey data, 8 train rows each."""
    root = tmp_path_factory.mktemp("e2e") / "data"
    config = SynthConfig(
        out_dir=root, per_class=8, image_size=32, classes=("", "7", "23")
    )
    generate_dataset(config, log=lambda _: None)
    return root


@pytest.fixture(scope="module")
def run_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    result = run_train(
        dataset.parent, f"data.data_root={dataset}", f"hydra.run.dir={out}", *FAST
    )
    assert "test top-1:" in result.stdout
    return out


def test_run_folder_has_the_expected_files(run_dir: Path) -> None:
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "labels_mapping.json",
        "metrics.csv",
        "metrics.json",
    ):
        assert (run_dir / name).is_file(), name


def test_labels_mapping_describes_classes_and_preprocessing(run_dir: Path) -> None:
    mapping = json.loads((run_dir / "labels_mapping.json").read_text())
    assert mapping["format_version"] == 5
    assert mapping["arch"] == "resnet18"
    assert mapping["class_names"] == ["", "23", "7"]
    assert mapping["image_size"] == 24
    assert mapping["resize_mode"] == "squash"
    assert mapping["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert mapping["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert (mapping["input_name"], mapping["output_name"]) == ("input", "logits")


def test_metrics_json_has_final_numbers(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]) >= {"acc_top1", "acc_top5", "loss", "per_class_acc"}
        assert set(metrics[split]["per_class_acc"]) == {"<empty>", "23", "7"}
    assert metrics["excluded_rows"]["val"]["count"] == 0
    assert metrics["wall_time_s"] > 0
    assert metrics["epochs_completed"] == 2
    assert metrics["best_checkpoint"].endswith("best.ckpt")


@pytest.mark.parametrize(("split", "stage"), [("test", "test"), ("valid", "val")])
def test_metrics_json_agrees_with_classifier_evaluate(
    run_dir: Path, dataset: Path, tmp_path: Path, split: str, stage: str
) -> None:
    """Training's numbers equal a second implementation's on the same checkpoint."""
    metrics = json.loads((run_dir / "metrics.json").read_text())[stage]
    best = run_dir / "checkpoints" / "best.ckpt"
    out = tmp_path / "evaluation"
    args = ["--model", str(best), "--data-root", str(dataset), "--split", split]
    assert evaluate_main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_rows"] == 6  # 2 rows per class
    # Accuracies are multiples of 1/6: any disagreeing row shows.
    assert metrics["acc_top1"] == pytest.approx(summary["top1"], abs=1e-6)
    assert summary["top5_k"] == 3  # top-5 of 3 classes: every row is a hit
    assert summary["top5"] == 1.0
    assert metrics["acc_top5"] == pytest.approx(summary["top5"], abs=1e-6)
    per_class = {name: row["recall"] for name, row in summary["per_class"].items()}
    assert metrics["per_class_acc"] == pytest.approx(per_class, abs=1e-6)


def test_metrics_csv_logs_train_and_val_curves(run_dir: Path) -> None:
    with (run_dir / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert {
        "train/loss",
        "train/acc_top1",
        "train/acc_top5",
        "val/loss",
        "val/acc_top1",
        "val/acc_top5",
    } <= columns
    assert "val/acc_class/<empty>" in columns
    assert "lr-AdamW" in columns or any(c.startswith("lr-") for c in columns)


def test_checkpoint_loads_weights_only(run_dir: Path) -> None:
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["num_classes"] == 3
    assert checkpoint["hyper_parameters"]["class_names"] == ["", "23", "7"]
    assert any(k.startswith("network.") for k in checkpoint["state_dict"])


def test_a_new_run_never_reuses_another_runs_checkpoints(
    run_dir: Path, dataset: Path
) -> None:
    result = run_train(
        dataset.parent,
        f"data.data_root={dataset}",
        f"hydra.run.dir={run_dir}",
        *FAST,
        check=False,
    )
    assert result.returncode == 2
    assert "already holds checkpoints" in result.stderr
    assert "ckpt_path=" in result.stderr


@pytest.mark.slow
def test_resume_is_explicit_and_continues(
    run_dir: Path, dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed"
    last = run_dir / "checkpoints" / "last.ckpt"
    overrides = [o for o in FAST if not o.startswith("trainer.max_epochs")]
    run_train(
        dataset.parent,
        f"data.data_root={dataset}",
        f"hydra.run.dir={out}",
        *overrides,
        "trainer.max_epochs=3",
        f"ckpt_path={last}",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 3
    with (out / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    # The earlier epochs' rows are kept (copied from the interrupted run's
    # metrics.csv), the third epoch is trained, and nothing is trained twice.
    epochs = [row["epoch"] for row in rows]
    assert epochs == ["0", "1", "2"]
    with (run_dir / "metrics.csv").open() as handle:
        earlier = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    widened = [{**row, **dict.fromkeys(set(rows[0]) - set(row), "")} for row in earlier]
    assert rows[:2] == widened


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(dataset: Path, tmp_path: Path) -> None:
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_train(
            dataset.parent,
            f"data.data_root={dataset}",
            f"hydra.run.dir={out}",
            *[o for o in FAST if "rich" not in o],
            "data.num_workers=1",
            "callbacks=[model_checkpoint,ema]",  # training and EMA; no artifacts
        )
        metrics = json.loads((out / "metrics.json").read_text())
        for key in ("wall_time_s", "best_checkpoint"):
            metrics.pop(key)
        results.append(metrics)
    assert results[0] == results[1]


def test_bad_data_fails_fast_with_one_clear_line(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "bad", per_class=2)
    jsonl = root / "train" / "annotations.jsonl"
    jsonl.write_text(jsonl.read_text() + "{broken\n")
    result = run_train(
        tmp_path,
        f"data.data_root={root}",
        f"hydra.run.dir={tmp_path / 'o'}",
        *FAST,
        check=False,
    )
    assert result.returncode == 2
    assert f"{jsonl}:7" in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_weight_download_stops_with_one_clear_line(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", per_class=2)
    # An unreachable proxy makes the download fail alike with or without internet.
    proxy = "http://127.0.0.1:9"
    result = run_train(
        tmp_path,
        f"data.data_root={root}",
        f"hydra.run.dir={tmp_path / 'o'}",
        "model.pretrained=true",
        *FAST,
        check=False,
        extra_env={
            "TORCH_HOME": str(tmp_path / "torch"),
            **dict.fromkeys(("https_proxy", "HTTPS_PROXY", "http_proxy"), proxy),
        },
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not download ImageNet weights for resnet18")
    assert "model.weights_path=" in last
    assert "model.pretrained=false" in last
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_unknown_override_is_refused_naming_the_key(tmp_path: Path) -> None:
    result = run_train(tmp_path, "data.batch_sise=4", check=False)
    assert result.returncode != 0
    assert "batch_sise" in result.stderr


def test_logging_none_trains_without_the_lr_monitor(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no_logger"
    result = run_train(
        dataset.parent,
        f"data.data_root={dataset}",
        f"hydra.run.dir={out}",
        *FAST,
        "trainer.max_epochs=1",
        "logging=none",
    )
    assert "callbacks.lr_monitor: left out" in result.stderr + result.stdout
    assert not (out / "metrics.csv").exists()
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 1


def test_an_unexpected_exception_keeps_its_traceback(
    dataset: Path, tmp_path: Path
) -> None:
    # torch's own ValueError (not the project's error type): a bug's shape.
    result = run_train(
        dataset.parent,
        f"data.data_root={dataset}",
        f"hydra.run.dir={tmp_path / 'o'}",
        *FAST,
        "optimizer.lr=-1",
        check=False,
    )
    assert result.returncode not in (0, 2)
    assert "Traceback" in result.stderr
    assert "Invalid learning rate" in result.stderr
    assert "error: Invalid" not in result.stderr


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_resuming_keeps_the_history(
    dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "interrupted"
    overrides = [
        f"data.data_root={dataset}",
        *[o for o in FAST if "max_epochs" not in o and "rich" not in o],
        "callbacks=none",
        "trainer.max_epochs=100000",  # only Ctrl-C ends it
        f"hydra.run.dir={out}",  # Hydra reports hydra.* overrides after the rest
    ]
    command = [sys.executable, "-m", "classifier_training.train"]
    process = subprocess.Popen(
        [*command, "--config-name", "train_demo", *overrides],
        cwd=dataset.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A process started with SIGINT ignored keeps ignoring it, and pytest's
        # process may have been left so by an earlier in-process interrupt
        # (Lightning ignores Ctrl-C while it shuts down): start the child as a
        # terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    last = out / "checkpoints" / "last.ckpt"

    def epoch_0_done() -> bool:
        """last.ckpt saved and epoch 0's training row logged (after the save)."""
        if not last.is_file() or not (out / "metrics.csv").is_file():
            return False
        rows = _csv_rows(out / "metrics.csv")
        return any(r.get("train/loss") and r.get("epoch") == "0" for r in rows)

    deadline = time.monotonic() + 300
    while not epoch_0_done():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "epoch 0 not finished after 300 s"
        time.sleep(0.1)  # polling interval, not a wait for the event
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode not in (0, 2), stderr[-2000:]
    printed = stdout.strip().splitlines()[-1]
    expected = shlex.join(
        [
            "classifier-train",
            *("--config-name", "train_demo"),
            *overrides,
            f"ckpt_path={last.resolve()}",
        ]
    )
    assert printed == expected

    before = _csv_rows(out / "metrics.csv")
    resumed_at = torch.load(last, weights_only=True)["global_step"]
    kept = [r for r in before if int(r["step"]) < resumed_at]
    assert {r["epoch"] for r in kept if r.get("train/loss")} >= {"0"}
    # Run the printed command, in a new folder and only two more epochs.
    epochs = torch.load(last, weights_only=True)["epoch"] + 3
    resumed = tmp_path / "resumed"
    args = [
        a.replace(str(out), str(resumed)) if a.startswith("hydra.run.dir=") else a
        for a in shlex.split(printed)[1:]
    ]
    args = [a for a in args if not a.startswith("trainer.max_epochs=")]
    run = subprocess.run(
        [*command, *args, f"trainer.max_epochs={epochs}"],
        cwd=dataset.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    after = _csv_rows(resumed / "metrics.csv")
    assert [{k: v for k, v in r.items() if v} for r in after[: len(kept)]] == [
        {k: v for k, v in r.items() if v} for r in kept
    ]
    val_epochs = [int(r["epoch"]) for r in after if r.get("val/acc_top1")]
    # Every epoch once, none lost; then the final evaluation of the best weights.
    assert val_epochs == [*range(epochs), epochs]
