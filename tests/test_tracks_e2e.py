"""Tracks end to end through the commands: ``classifier-synth --tracks``, training
with ``data.group_key`` (checkpoint selected by ``val/track_top1``),
``classifier-evaluate --group-by`` on the ONNX model and the checkpoint, and
``classifier-predict --group-by``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.inference.predict import main as predict_main
from classifier_training.synthetic.cli import main as synth_main
from tests.helpers import make_folder_dataset, run_train
from tests.inference_support import REPO, TrainedRun


@dataclass(frozen=True)
class TrackRun:
    data: Path
    run: Path
    metrics: dict[str, object]


@pytest.fixture(scope="module")
def track_run(tmp_path_factory: pytest.TempPathFactory) -> TrackRun:
    """A tiny track set and two epochs trained on it with the track key."""
    tmp = tmp_path_factory.mktemp("tracks_e2e")
    data = tmp / "data"
    argv = ["--out", str(data), "--tracks", "--frames", "3-6", "--per-class", "3"]
    argv += ["--classes", "7,23,empty", "--image-size", "32", "--workers", "1", "-q"]
    assert synth_main(argv) == 0
    run = tmp / "run"
    run_train(
        tmp,
        f"data.data_root={data}",
        "data.image_size=32",
        "data.num_workers=0",
        "data.group_key=track_id",
        "callbacks.model_checkpoint.monitor=val/track_top1",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
        "callbacks=[model_checkpoint,ema,onnx_export]",  # no artifacts to draw
        extra_env={"PYTHONPATH": str(REPO / "src")},
    )
    metrics = json.loads((run / "metrics.json").read_text())
    return TrackRun(data, run, metrics)


def _tracks_of(jsonl: Path) -> list[str]:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return list(dict.fromkeys(r["metadata"]["track_id"] for r in rows))


@pytest.mark.slow
def test_training_logs_and_selects_by_track_top1(track_run: TrackRun) -> None:
    for split in ("val", "test"):
        split_metrics = track_run.metrics[split]
        assert isinstance(split_metrics, dict)
        assert 0.0 <= split_metrics["track_top1"] <= 1.0
    with (track_run.run / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/track_top1")]
    # The fit's two epochs, then the post-fit validation of the best checkpoint.
    epochs = [r for r in rows if int(r["epoch"]) < 2]
    assert len(epochs) == 2
    assert len(rows) == 3
    checkpoint = torch.load(
        track_run.run / "checkpoints" / "best.ckpt", weights_only=False
    )
    (state,) = [v for k, v in checkpoint["callbacks"].items() if "track_top1" in k]
    best = max(float(r["val/track_top1"]) for r in epochs)
    assert float(state["best_model_score"]) == pytest.approx(best)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["model.onnx", "checkpoints/best.ckpt"])
def test_evaluate_and_predict_answer_per_track(
    track_run: TrackRun, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    argv = ["--model", str(track_run.run / model), "--data-root", str(track_run.data)]
    argv += ["--out", str(out), "--group-by", "track_id", "--rule", "logprob"]
    assert evaluate_main(argv) == 0
    assert "track top-1" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    tracks = summary["tracks"]
    test_tracks = _tracks_of(track_run.data / "test" / "annotations.jsonl")
    assert tracks["num_tracks"] == len(test_tracks) >= 3
    assert tracks["frame_top1"] == summary["top1"]
    assert tracks["rows_without_key"] == 0
    assert [r["threshold"] for r in tracks["risk_coverage"]][:2] == [0.0, 0.5]
    assert tracks["risk_coverage"][0]["accuracy"] == pytest.approx(tracks["top1"])
    if model.endswith(".ckpt"):
        # The training metric (plain softmax) and the calibrated evaluation give
        # the same logprob answers: the temperature does not change them.
        test_metrics = track_run.metrics["test"]
        assert isinstance(test_metrics, dict)
        assert tracks["top1"] == pytest.approx(test_metrics["track_top1"], abs=1e-6)
    page = (out / "report.html").read_text()
    assert 'id="tracks"' in page
    if tracks["worst"]:
        assert (out / "worst_tracks.png").is_file()
        assert tracks["worst"][0]["track"] in page

    jsonl = track_run.data / "test" / "annotations.jsonl"
    assert (
        predict_main(
            [str(track_run.run / model), str(jsonl), "--group-by", "track_id", "--json"]
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["track"] for line in lines] == test_tracks
    answers = {line["track"]: line["best"] for line in lines}
    for worst in tracks["worst"]:
        assert answers[worst["track"]] == worst["best"].replace("<empty>", "")


@pytest.mark.slow
def test_bad_group_keys_stop_evaluate_in_one_line(
    track_run: TrackRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(track_run.run / "model.onnx")
    argv = [
        "--model",
        model,
        "--data-root",
        str(track_run.data),
        "--out",
        str(tmp_path),
    ]
    assert evaluate_main([*argv, "--group-by", "player"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    test_file = track_run.data / "test" / "annotations.jsonl"
    assert f"{test_file}: no row has metadata.player" in err
    folders = make_folder_dataset(tmp_path / "folders", labels=("7", "23"))
    assert (
        evaluate_main(
            ["--model", model, "--data-root", str(folders), "--group-by", "track_id"]
        )
        == 2
    )
    assert "class-folder layout has none" in capsys.readouterr().err


@pytest.mark.slow
def test_without_a_group_key_no_track_metric_is_logged(trained_run: TrainedRun) -> None:
    for split in ("val", "test"):
        split_metrics = trained_run.metrics[split]
        assert isinstance(split_metrics, dict)
        assert "track_top1" not in split_metrics
