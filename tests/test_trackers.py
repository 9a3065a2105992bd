"""TensorBoard and W&B (offline) both receive a real run, side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import make_jsonl_dataset, run_train
from tests.wandb_offline import history_keys, read_records


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs with ``logging=[tensorboard,wandb]`` and W&B offline."""
    base = tmp_path_factory.mktemp("trackers")
    data = make_jsonl_dataset(base / "data")
    out = base / "run"
    wandb_home = base / "wandb_home"
    env = {
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": "",
        # Keep W&B's caches and staging out of the user's home.
        "WANDB_DIR": str(wandb_home),
        "WANDB_CACHE_DIR": str(wandb_home / "cache"),
        "WANDB_DATA_DIR": str(wandb_home / "data"),
        "WANDB_CONFIG_DIR": str(wandb_home / "config"),
    }
    wandb_home.mkdir()
    run_train(
        base,
        f"data.data_root={data}",
        f"hydra.run.dir={out}",
        "logging=[tensorboard,wandb]",
        "data.image_size=24",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_epochs=2",
        "~callbacks.rich_progress_bar",
        extra_env=env,
    )
    return out


@pytest.mark.slow
def test_tensorboard_receives_metrics_config_and_images(tracked_run: Path) -> None:
    events = EventAccumulator(
        str(tracked_run / "tensorboard"),
        size_guidance={"images": 0, "scalars": 0, "tensors": 0},
    )
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "val/acc_top1", "test/acc_top1"} <= set(tags["scalars"])
    assert "calibration/temperature" in tags["scalars"]
    assert {"val/confusion_matrix", "val/sample_predictions"} <= set(tags["images"])
    epochs = [e.step for e in events.Images("val/confusion_matrix")]
    assert len(epochs) >= 2  # one per epoch (and the final evaluation)
    assert events.Images("val/confusion_matrix")[0].encoded_image_string.startswith(
        b"\x89PNG"
    )
    (config,) = events.Tensors("config/text_summary")
    text = config.tensor_proto.string_val[0].decode()
    assert "image_size: 24" in text
    assert "task_name: train_demo" in text
    # CSV keeps working beside the trackers.
    assert (tracked_run / "metrics.csv").is_file()


@pytest.mark.slow
def test_wandb_offline_run_holds_everything(tracked_run: Path) -> None:
    (run_file,) = (tracked_run / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_records(run_file)
    keys = history_keys(records)
    assert {"train/loss", "val/acc_top1", "test/acc_top1"} <= keys
    assert "calibration/test_ece_after" in keys
    assert "val/confusion_matrix/filenames" in keys
    assert "val/sample_predictions/filenames" in keys
    config_keys = {
        item.key
        for record in records
        if record.WhichOneof("record_type") == "config"
        for item in record.config.update
    }
    assert {"data", "model", "optimizer", "trainer", "seed"} <= config_keys
    artifacts = [
        r.artifact for r in records if r.WhichOneof("record_type") == "artifact"
    ]
    assert len(artifacts) == 1
    assert artifacts[0].type == "model"
    files = {entry.path for entry in artifacts[0].manifest.contents}
    assert {"model.onnx", "labels_mapping.json"} <= files
    media = run_file.parent / "files" / "media" / "images" / "val"
    assert any(media.glob("confusion_matrix_*.png"))
