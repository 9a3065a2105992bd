"""A new user's first hour (issue 26): help, misspelt keys, where files land, a
stopped run's report, degenerate calibration, readable pages.

Fast tests only; the one training run these checks need lives in
``test_first_hour_run.py`` (slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.callbacks.progress import short_metrics
from classifier_training.config import ConfigError
from classifier_training.core.calibration import (
    TEMPERATURE_RANGE,
    degenerate_calibration,
)
from classifier_training.core.readers import natural_order, shown_name
from classifier_training.core.run_files import (
    CHECKPOINTS_DIR,
    LAST_CHECKPOINT,
    METRICS_FILE,
    REPORT_FILE,
    eval_file,
    eval_file_names,
)
from classifier_training.plots.grid import confidence_text
from classifier_training.report.html import WIDE_IMAGE_PX, figure
from classifier_training.report.sections import per_class_table
from classifier_training.training.help import COMMON_OVERRIDES, recipes
from classifier_training.training.overrides import check_command_line
from tests.inference_support import REPO, TrainedRun

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "80"}


def _python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_help_names_recipes_groups_and_keys_before_any_heavy_import(
    tmp_path: Path,
) -> None:
    script = (
        "import sys; sys.argv = ['classifier-train', '--help']\n"
        "from classifier_training.train import main\n"
        "main()\n"
        "heavy = {'torch', 'lightning', 'torchvision', 'timm'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = _python(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for recipe in ("train_demo", "train_jersey_ocr_resnet18_local"):
        assert f"  {recipe}\n" in text
    assert "train_jersey_ocr_resnet18 [default]" in text
    assert "  model: image_classifier, resnet18, resnet34, resnet50" in text
    assert "  transforms: broadcast, digits, natural, none" in text
    for key, _ in COMMON_OVERRIDES:
        assert f"  {key}" in text
    assert len(COMMON_OVERRIDES) == 10
    assert "--cfg job" in text
    assert "--hydra-help" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert not list(tmp_path.iterdir())  # printing help makes no run folder


def test_each_recipe_is_described_in_one_line() -> None:
    described = recipes()
    assert set(described) == {
        "train_demo",
        "train_jersey_ocr_resnet18",
        "train_jersey_ocr_resnet18_local",
    }
    assert all(line and "\n" not in line for line in described.values())


def test_hydra_help_stays_reachable(tmp_path: Path) -> None:
    result = _python(tmp_path, "-m", "classifier_training.train", "--hydra-help")
    assert result.returncode == 0, result.stderr
    assert "Hydra" in result.stdout


@pytest.mark.parametrize("key", ["data.batch_sise=8", "+data.batch_sise=8"])
def test_a_misspelt_key_names_the_right_one_and_exits_2(
    tmp_path: Path, key: str
) -> None:
    result = _python(
        tmp_path, "-m", "classifier_training.train", "--config-name", "train_demo", key
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data.batch_sise: ")
    assert last.endswith("did you mean data.batch_size?")
    assert "To append to your config" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("overrides", "closest"),
    [
        (["model.pretraind=false"], "model.pretrained"),
        (["trainer.max_epoch=3"], "trainer.max_epochs"),
        (["optimizer.lrr=0.1"], "optimizer.lr"),
        (["scheduler.warmup_epoch=1"], "scheduler.warmup_epochs"),
        (["callbacks.ema.decy=0.9"], "callbacks.ema.decay"),
        (["~callbacks.emma"], "callbacks.ema"),
        (["logging.csv.nme=x"], "logging.csv.name"),
        (["data.transforms.auto_augmnt=none"], "data.transforms.auto_augment"),
        (["data.sampler.mod=auto"], "data.sampler.mode"),
        (["+max_epochs=3"], "trainer.max_epochs"),
        (["model=resnet50", "model.lr=0.1"], "optimizer.lr"),
        (["+optimizer.momentun=0.9", "optimizer=sgd"], "optimizer.momentum"),
        (["model=resnet5"], "model=resnet50"),
    ],
)
def test_unknown_keys_of_every_group_are_refused(
    overrides: list[str], closest: str
) -> None:
    with pytest.raises(ConfigError, match=f"did you mean {closest}"):
        check_command_line(["--config-name", "train_demo", *overrides], "x")


@pytest.mark.parametrize(
    "overrides",
    [
        ["+trainer.profiler=simple"],  # a Trainer argument the recipe leaves out
        ["optimizer=sgd", "optimizer.momentum=0.9"],
        ["+data.sampler.class_weights.a=2"],  # a mapping takes any key
        ["+callbacks.mine._target_=x.Y"],  # a new entry of a collection
        ["trainer.max_epochs=1,2", "-m"],
        ["hydra.run.dir=somewhere", "data.batch_size=8"],
        ["--cfg", "job", "model=resnet50", "model.pretrained=false"],
    ],
)
def test_valid_keys_pass(overrides: list[str]) -> None:
    check_command_line(["-cn", "train_demo", *overrides], "x")


def test_a_run_stopped_at_start_up_leaves_no_folder(tmp_path: Path) -> None:
    result = _python(
        tmp_path,
        "-m",
        "classifier_training.train",
        "--config-name",
        "train_demo",
        f"data.data_root={tmp_path / 'missing'}",
    )
    assert result.returncode == 2
    assert "data root folder does not exist" in result.stderr
    assert not any((tmp_path / "outputs").iterdir())
    assert not (tmp_path / "outputs" / "latest").exists()


def test_a_stopped_run_gets_a_page_with_the_resume_command(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(
        trained_run.run_dir, run, ignore=shutil.ignore_patterns("*.ckpt", "*.onnx")
    )
    (run / METRICS_FILE).unlink()  # as after Ctrl-C: no final metrics
    (run / REPORT_FILE).unlink()
    last = trained_run.run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    os.link(last, run / CHECKPOINTS_DIR / LAST_CHECKPOINT)
    result = _python(tmp_path, "-m", "classifier_training.report.cli", str(run))
    assert result.returncode == 0, result.stderr
    html = (run / REPORT_FILE).read_text(encoding="utf-8")
    assert "Training run stopped at epoch 2 of 2" in html
    assert "This run stopped after 2 of 2 epoch(s)" in html
    resumed = run.resolve() / CHECKPOINTS_DIR / LAST_CHECKPOINT
    assert "--config-name train_demo" in html
    assert f"ckpt_path={resumed}" in html
    assert "data:image/png;base64" in html  # the curves and last epoch's plots


def test_a_folder_that_is_no_run_is_still_refused(tmp_path: Path) -> None:
    result = _python(tmp_path, "-m", "classifier_training.report.cli", str(tmp_path))
    assert result.returncode == 2
    assert "neither metrics.json or .hydra/ (a training run)" in result.stderr


def test_top5_is_left_out_of_a_three_class_report(trained_run: TrainedRun) -> None:
    html = (trained_run.run_dir / REPORT_FILE).read_text(encoding="utf-8")
    metrics = html.split('id="metrics"', 1)[1].split("<section", 1)[0]
    assert "top-1" in metrics
    assert "top-5" not in metrics


def test_training_and_evaluate_share_one_evaluation_folder(
    trained_run: TrainedRun,
) -> None:
    assert eval_file("confusion_matrix.png", "test") == "eval/test/confusion_matrix.png"
    assert (trained_run.run_dir / eval_file("confusion_matrix.png", "test")).is_file()
    assert (trained_run.run_dir / eval_file("mistakes.png", "val")).is_file()
    assert eval_file_names("mistakes.png", "val")[1:] == (
        "eval/mistakes_val.png",
        "evaluation_val/mistakes.png",
    )  # older runs' layouts, still read


def test_degenerate_calibration_is_named() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 10, 400)
    noise = rng.normal(size=(400, 10))
    assert "is a bound" in str(
        degenerate_calibration(noise, targets, TEMPERATURE_RANGE[1])
    )
    assert "at chance" in str(degenerate_calibration(noise, targets, 3.0))
    learned = noise + 6 * np.eye(10)[targets]
    assert degenerate_calibration(learned, targets, 1.3) is None


def test_confidence_reads_apart_from_the_class_name() -> None:
    assert f"27 {confidence_text(0.02)}" == "27 (2 %)"


def test_class_names_show_in_natural_order() -> None:
    names = ["<empty>", "10", "2", "1", "b", "a10", "a9"]
    assert [names[i] for i in natural_order(names)] == [
        "<empty>", "1", "2", "10", "a9", "a10", "b",
    ]  # fmt: skip
    assert shown_name("<empty>") == shown_name("") == "(none)"
    row = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    html = per_class_table({"10": row, "2": row, "<empty>": row})
    assert html.index(">(none)<") < html.index(">2<") < html.index(">10<")


def test_wide_charts_keep_their_resolution_and_scroll(tmp_path: Path) -> None:
    wide, narrow = tmp_path / "wide.png", tmp_path / "narrow.png"
    Image.new("RGB", (WIDE_IMAGE_PX + 1, 40)).save(wide)
    Image.new("RGB", (300, 40)).save(narrow)
    assert 'class="scroll-x"' in figure(wide, "class balance")
    assert "scroll-x" not in figure(narrow, "curve")


def test_the_progress_bar_shows_three_short_numbers() -> None:
    shown = short_metrics(
        {"train/loss": 4.61234, "train/acc_top1": 0.0213, "val/loss": 4.6,
         "val/acc_top1": 0.019, "val/acc_top5": 0.05, "v_num": 0}
    )  # fmt: skip
    assert shown == {"loss": "4.61", "acc": "2.1%", "val acc": "1.9%"}
    # Lightning's column writes "name: value" joined by spaces, beside the bar.
    assert len(" ".join(f"{k}: {v}" for k, v in shown.items())) <= 34
