"""One untrained run seen as a new user sees it (issue 26): a quiet 80-column
terminal, ``outputs/latest``, a degenerate calibration said out loud, slim
``best.ckpt``, and exports/evaluations that land in the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from classifier_training.callbacks.checkpoint import RESUME_ONLY_KEYS
from classifier_training.config import ConfigError
from classifier_training.core.run_files import (
    BEST_CHECKPOINT,
    LABELS_MAPPING_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    MODEL_ONNX,
    REPORT_FILE,
    SUMMARY_FILE,
    checkpoint_file,
    eval_file,
)
from classifier_training.training.resume import checked_ckpt_path
from tests.helpers import make_jsonl_dataset
from tests.inference_support import REPO

pytestmark = pytest.mark.slow

ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO / "src"),
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "80",
}
BOX = set("│┃┏┗┡└┌┐┘┼━─")


@dataclass
class UntrainedRun:
    """The run's folder, the folder it was started in, and its output."""

    cwd: Path
    run_dir: Path
    data_root: Path
    output: str


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> UntrainedRun:
    """One epoch at learning rate 0 (a model at chance), in the default run folder."""
    cwd = tmp_path_factory.mktemp("first_hour")
    data_root = make_jsonl_dataset(cwd / "data", per_class=6, eval_per_class=4)
    result = _python(
        cwd,
        "-m",
        "classifier_training.train",
        "--config-name",
        "train_demo",
        f"data.data_root={data_root}",
        "data.image_size=32",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "optimizer.lr=0",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    (run_dir,) = (cwd / "outputs").glob("????-??-??/*")
    return UntrainedRun(cwd, run_dir, data_root, output)


def test_the_terminal_is_quiet_on_a_cpu_and_fits_80_columns(
    untrained: UntrainedRun,
) -> None:
    output = untrained.output
    assert "CUDA_HOME" not in output
    assert "GPU available" not in output
    assert "TPU available" not in output
    assert "log_every_n_steps" not in output
    assert output.count("Restoring states") <= 1
    assert "Loaded model weights" not in output
    tables = [line for line in output.splitlines() if BOX & set(line)]
    assert tables
    assert max(len(line) for line in tables) <= 80
    assert f"run folder: {untrained.run_dir}" in output  # the path on its own line


def test_outputs_latest_is_a_relative_link_to_the_run(untrained: UntrainedRun) -> None:
    latest = untrained.cwd / "outputs" / "latest"
    assert latest.is_symlink()
    assert not os.path.isabs(os.readlink(latest))
    assert latest.resolve() == untrained.run_dir.resolve()


def test_a_model_at_chance_is_reported_as_degenerate_calibration(
    untrained: UntrainedRun,
) -> None:
    assert "warning: calibration is degenerate" in untrained.output
    metrics = json.loads((untrained.run_dir / METRICS_FILE).read_text())
    calibration = metrics["calibration"]
    assert calibration["degenerate"]
    assert calibration["temperature"] == 1.0
    assert "fitted_temperature" in calibration
    mapping = json.loads((untrained.run_dir / LABELS_MAPPING_FILE).read_text())
    assert mapping["temperature"] == 1.0
    html = (untrained.run_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert "Degenerate calibration:" in html


def test_best_checkpoint_is_slim_and_last_keeps_everything(
    untrained: UntrainedRun,
) -> None:
    best_path = untrained.run_dir / checkpoint_file(BEST_CHECKPOINT)
    last_path = untrained.run_dir / checkpoint_file(LAST_CHECKPOINT)
    best = torch.load(best_path, map_location="cpu", weights_only=True)
    last = torch.load(last_path, map_location="cpu", weights_only=True)
    for key in RESUME_ONLY_KEYS:
        assert key not in best
        assert key in last
    for key in ("state_dict", "current_model_state", "hyper_parameters"):
        assert key in best  # EMA weights, raw weights, the model's settings
    assert "ImageFolderDataModule" in best  # the deployment contract
    assert best_path.stat().st_size < 0.75 * last_path.stat().st_size
    with pytest.raises(ConfigError, match=r"resume from last\.ckpt"):
        checked_ckpt_path(str(best_path))
    assert checked_ckpt_path(str(last_path)) == str(last_path)


def test_export_and_evaluate_write_into_the_run_folder(
    untrained: UntrainedRun,
) -> None:
    run = untrained.run_dir
    best = run / checkpoint_file(BEST_CHECKPOINT)
    before = (run / MODEL_ONNX).stat().st_mtime_ns
    exported = _python(untrained.cwd, "-m", "classifier_training.export", str(best))
    assert exported.returncode == 0, exported.stderr
    assert (run / MODEL_ONNX).stat().st_mtime_ns != before  # its own model: replaced
    assert not (untrained.cwd / MODEL_ONNX).exists()
    last = run / checkpoint_file(LAST_CHECKPOINT)
    refused = _python(untrained.cwd, "-m", "classifier_training.export", str(last))
    assert refused.returncode == 2
    assert "holds another model" in refused.stderr
    assert "--force" in refused.stderr
    evaluated = _python(
        untrained.cwd,
        "-m",
        "classifier_training.inference.evaluate",
        "--model",
        str(run / MODEL_ONNX),
        "--data-root",
        str(untrained.data_root),
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert (run / eval_file(SUMMARY_FILE, "test")).is_file()


def test_predict_says_once_when_no_answer_can_reach_the_threshold(
    untrained: UntrainedRun,
) -> None:
    images = untrained.data_root / "test" / "images"
    result = _python(
        untrained.cwd,
        "-m",
        "classifier_training.inference.predict",
        str(untrained.run_dir / MODEL_ONNX),
        str(images),
        "--min-confidence",
        "0.99",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: --min-confidence 0.99 is above every") == 1
