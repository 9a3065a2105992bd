"""The seed's interfaces, used as code written for the original design uses them.

A downstream pipeline reads ``labels_mapping.json`` by the seed's keys only and
runs ``model.onnx`` itself; a user adds a model by the seed's recipe and trains
it with the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image, ImageOps

from classifier_training.checkpoints import load_checkpoint
from classifier_training.core.preprocessing import Preprocessor
from classifier_training.core.run_files import (
    CONFIG_FILE,
    CONFUSION_JSON,
    LABELS_MAPPING_FILE,
    METRICS_FILE,
    MODEL_ONNX,
    eval_file,
)
from tests.helpers import make_jsonl_dataset, run_train
from tests.inference_support import TrainedRun

REPO = Path(__file__).resolve().parents[1]


# -- a consumer of labels_mapping.json written for the seed ---------------------------
def seed_consumer_logits(run_dir: Path, images: list[Path]) -> np.ndarray:
    """What a video pipeline written for the seed does with a run folder.

    Only the seed's keys (``num_classes``, ``idx_to_class``, ``normalization``,
    ``image_size``), PIL and numpy: EXIF-orient, RGB, resize the whole crop to the
    square input (PIL bilinear), scale to [0, 1], normalise, NCHW float32.
    """
    mapping = json.loads((run_dir / LABELS_MAPPING_FILE).read_text())
    size = mapping["image_size"]
    # The run trains with the default resize rule; the consumer implements it only.
    assert mapping["resize_mode"] == "squash"
    mean = np.array(mapping["normalization"]["mean"], dtype=np.float32)
    std = np.array(mapping["normalization"]["std"], dtype=np.float32)
    batch = []
    for path in images:
        with Image.open(path) as raw:
            image = ImageOps.exif_transpose(raw).convert("RGB")
        image = image.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        batch.append(((pixels - mean) / std).transpose(2, 0, 1))
    session = ort.InferenceSession(
        str(run_dir / MODEL_ONNX), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    (logits,) = session.run(None, {name: np.stack(batch).astype(np.float32)})
    assert logits.shape == (len(images), mapping["num_classes"])
    return np.asarray(logits)


def test_a_seed_consumer_reproduces_the_test_accuracy(trained_run: TrainedRun) -> None:
    """``model.onnx`` holds the best checkpoint's weights (the EMA ones, which the
    final test evaluated: see ``callbacks/onnx_export.py``), so a consumer using
    the seed's keys alone must score exactly the run's test figures."""
    split_dir = trained_run.data_root / "test"
    rows = [
        json.loads(line)
        for line in (split_dir / "annotations.jsonl").read_text().splitlines()
    ]
    images = [split_dir / row["image"] for row in rows]
    mapping = json.loads((trained_run.run_dir / LABELS_MAPPING_FILE).read_text())
    idx_to_class = mapping["idx_to_class"]
    labels = {name: int(index) for index, name in idx_to_class.items()}
    truth = np.array([labels[row["suffix"]] for row in rows])

    logits = seed_consumer_logits(trained_run.run_dir, images)
    predicted = logits.argmax(axis=1)

    metrics = json.loads((trained_run.run_dir / METRICS_FILE).read_text())
    accuracy = float((predicted == truth).mean())
    assert accuracy == pytest.approx(metrics["test"]["acc_top1"], abs=1e-6)
    # Row by row: the evaluation's confusion matrix on the same rows.
    confusion = json.loads(
        (trained_run.run_dir / eval_file(CONFUSION_JSON, "test")).read_text()
    )
    mine = np.zeros((len(idx_to_class),) * 2, dtype=int)
    np.add.at(mine, (truth, predicted), 1)
    assert mine.tolist() == confusion["matrix"]
    # And the numbers themselves: the checkpoint's network on the project's own
    # preprocessing gives the consumer's logits.
    loaded = load_checkpoint(trained_run.checkpoint)
    batch = Preprocessor.from_contract(loaded.contract).batch(images)
    with torch.no_grad():
        expected = loaded.network(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


# -- the seed's "add a model" recipe ---------------------------------------------------
RECIPE_MODULE = '''"""A model added by the seed's recipe: nothing else edited."""

from torch import nn

from classifier_training.models.base import BaseClassificationModel
from classifier_training.utils.hydra import register


@register(group="model", name="tiny_cnn")
class TinyCNNClassificationModel(BaseClassificationModel):
    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, num_classes),
        )
'''


@pytest.mark.slow
def test_a_model_added_by_the_seed_recipe_trains_through_the_cli(
    tmp_path: Path,
) -> None:
    # 1. a module in src/classifier_training/models/ (of a copy of the package)
    src = tmp_path / "src"
    shutil.copytree(
        REPO / "src" / "classifier_training",
        src / "classifier_training",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "classifier_training" / "models" / "tiny_cnn.py").write_text(RECIPE_MODULE)
    data_root = make_jsonl_dataset(tmp_path / "data", per_class=4, size=16)
    run_dir = tmp_path / "run"
    # 2.-3. registered with @register, selected by its name
    run_train(
        tmp_path,
        "model=tiny_cnn",
        f"data.data_root={data_root}",
        "data.image_size=16",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
        "callbacks=[model_checkpoint,onnx_export]",  # what a consumer reads
        extra_env={"PYTHONPATH": str(src)},
    )
    config = (run_dir / CONFIG_FILE).read_text()
    target = "classifier_training.models.tiny_cnn.TinyCNNClassificationModel"
    assert f"_target_: {target}" in config
    mapping = json.loads((run_dir / LABELS_MAPPING_FILE).read_text())
    assert mapping["arch"] == target  # a network of its own: named by its class
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert 0.0 <= metrics["test"]["acc_top1"] <= 1.0
    images = sorted((data_root / "test" / "images").glob("*.png"))
    assert seed_consumer_logits(run_dir, images).shape == (len(images), 3)


PLUGIN_MODULE = '''"""Models kept in a package of their own."""

from torch import nn

from classifier_training.models.base import BaseClassificationModel
from classifier_training.utils.hydra import register


@register(group="model", name="plugin_cnn")
class PluginCNN(BaseClassificationModel):
    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
'''


def test_models_of_an_installed_package_register_through_its_entry_point(
    tmp_path: Path,
) -> None:
    """A distribution on the path (as ``pip install`` leaves it) whose entry point
    of the group ``classifier_training.models`` names its module."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_models.py").write_text(PLUGIN_MODULE)
    dist_info = site / "my_models-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: my-models\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[classifier_training.models]\nmy_models = my_models\n"
    )
    path = os.pathsep.join([str(site), str(REPO / "src")])
    result = subprocess.run(
        [
            sys.executable, "-m", "classifier_training.train",
            "--config-name", "train_demo", "model=plugin_cnn", "--cfg", "job",
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "_target_: my_models.PluginCNN" in result.stdout
