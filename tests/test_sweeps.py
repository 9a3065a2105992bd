"""Sweep summaries: hand-made sweep folders, and real ``classifier-train -m`` sweeps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

from classifier_training.report.cli import main as report_main
from classifier_training.report.settings import lead_of
from classifier_training.report.sweep import summarize_sweep, write_sweep_summary
from classifier_training.report.sweep_callback import SweepSummaryCallback
from tests.helpers import make_jsonl_dataset
from tests.sweep_support import base_config, read_csv, subprocess_env, write_run

ROOT_CONFIGS = (
    "train_demo",
    "train_jersey_ocr_resnet18",
    "train_jersey_ocr_resnet18_local",
)
# The fastest real job: tiny images, one epoch, checkpoints only.
TINY = [
    "data.image_size=16",
    "data.batch_size=8",
    "data.num_workers=0",
    "trainer.max_epochs=1",
    "callbacks=none",
]


def section_rows(page: str, anchor: str) -> list[list[str]]:
    """The body rows (cell texts) of the first table in a page's section."""
    body = page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]
    tbody = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        re.findall(r"<td[^>]*>(.*?)</td>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", tbody)
    ]


def test_summary_has_a_row_per_job_and_the_varying_overrides_as_columns(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    common = ["data.data_root=/data", "trainer.max_epochs=3"]
    write_run(sweep / "0", overrides=[*common, "optimizer.lr=0.1"], val_top1=0.7,
              curve=(0.5, 0.7, 0.6))  # fmt: skip
    write_run(sweep / "2", overrides=[*common, "optimizer.lr=0.01"], val_top1=None)
    write_run(sweep / "10", overrides=[*common, "optimizer.lr=0.001"], val_top1=0.9,
              curve=(0.9, 0.8, 0.85))  # fmt: skip
    (sweep / "2" / "job_status.json").write_text(
        json.dumps(
            {"status": "failed", "error": "/data: data root folder does not exist"}
        )
    )

    summary = write_sweep_summary(sweep)

    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "2", "10"]  # job order, 2 before 10
    assert list(rows[0])[:3] == ["job", "optimizer.lr", "status"]
    assert "data.data_root" not in rows[0]  # the same in every job
    assert [r["optimizer.lr"] for r in rows] == ["0.1", "0.01", "0.001"]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[1]["error"] == "/data: data root folder does not exist"
    assert rows[1]["val_top1"] == ""
    assert float(rows[2]["val_top1"]) == pytest.approx(0.9)
    assert float(rows[0]["test_ece"]) == pytest.approx(0.03)
    # The failed job's curves (logged before it failed) still tell its epochs.
    assert [r["best_epoch"] for r in rows] == ["1", "1", "0"]
    assert [r["epochs"] for r in rows] == ["3", "3", "3"]
    assert rows[0]["run_dir"] == str(sweep / "0")
    assert summary.ranked() == [2, 0, 1]  # best first, the failed job last
    page = (sweep / "summary.html").read_text()
    assert [row[0] for row in section_rows(page, "jobs")] == ["10", "0", "2"]
    assert page.count("<img") == 2  # val top-1 and train loss of all jobs


def test_a_job_without_metrics_or_status_is_reported_as_unfinished(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    write_run(sweep / "0", overrides=["seed=1"], val_top1=0.8)
    write_run(sweep / "1", overrides=["seed=2"], val_top1=None)  # killed

    write_sweep_summary(sweep)

    rows = read_csv(sweep / "summary.csv")

    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error"].startswith("no metrics.json")
    assert rows[1]["epochs"] == "3"  # from the curves it logged before it stopped


def _seed_sweep(root: Path, values: dict[str, list[float]]) -> Path:
    job = 0
    for lr, scores in values.items():
        for seed, score in enumerate(scores):
            overrides = [f"optimizer.lr={lr}", f"seed={seed}"]
            config = base_config(**{"optimizer.lr": float(lr), "seed": seed})
            write_run(
                root / str(job), overrides=overrides, config=config, val_top1=score
            )
            job += 1
    return root


def test_jobs_that_differ_only_by_seed_are_one_setting_with_mean_and_std(
    tmp_path: Path,
) -> None:
    sweep = _seed_sweep(
        tmp_path / "multirun", {"0.1": [0.80, 0.82, 0.84], "0.01": [0.70, 0.71, 0.72]}
    )

    summary = write_sweep_summary(sweep)

    best, second = summary.settings
    assert best.label == "optimizer.lr=0.1"
    assert best.seeds == ("0", "1", "2")
    assert best.mean == pytest.approx(0.82)
    assert best.std == pytest.approx(0.02)
    assert second.mean == pytest.approx(0.71)
    assert second.std == pytest.approx(0.01)
    rows = read_csv(sweep / "summary_settings.csv")
    assert [r["setting"] for r in rows] == ["optimizer.lr=0.1", "optimizer.lr=0.01"]
    assert float(rows[0]["mean"]) == pytest.approx(0.82)
    assert float(rows[0]["std"]) == pytest.approx(0.02)
    assert rows[1]["values"].split() == ["0.7", "0.71", "0.72"]

    lead = lead_of(summary.settings)
    assert lead is not None
    assert lead.lead == pytest.approx(0.11)
    assert lead.spread == pytest.approx(0.02)
    assert lead.exceeds_spread is True


def test_a_lead_inside_the_seed_spread_does_not_exceed_it(tmp_path: Path) -> None:
    sweep = _seed_sweep(
        tmp_path / "multirun", {"0.1": [0.70, 0.80, 0.90], "0.01": [0.77, 0.78, 0.79]}
    )

    lead = lead_of(summarize_sweep(sweep).settings)

    assert lead is not None
    assert lead.best.label == "optimizer.lr=0.1"
    assert lead.lead == pytest.approx(0.02)
    assert lead.spread == pytest.approx(0.1)
    assert lead.exceeds_spread is False


def test_without_a_seed_axis_there_are_no_settings(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    write_run(sweep / "0", overrides=["optimizer.lr=0.1"], val_top1=0.8)
    write_run(sweep / "1", overrides=["optimizer.lr=0.2"], val_top1=0.7)

    summary = write_sweep_summary(sweep)

    assert summary.settings == ()
    assert not (sweep / "summary_settings.csv").exists()


def test_classifier_report_on_a_sweep_rebuilds_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "multirun"
    write_run(sweep / "0", overrides=["optimizer.lr=0.1"], val_top1=0.8)
    write_run(sweep / "1", overrides=["optimizer.lr=0.2"], val_top1=0.7)

    assert report_main([str(sweep)]) == 0

    assert len(read_csv(sweep / "summary.csv")) == 2
    assert (sweep / "summary.html").is_file()
    out = capsys.readouterr().out
    assert "Sweep: 2 jobs" in out
    assert "lr=0.1" in out


def test_classifier_report_on_a_sweep_where_every_job_failed_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "multirun"
    write_run(sweep / "0", overrides=["optimizer.lr=0.1"], val_top1=None)
    write_run(sweep / "1", overrides=["optimizer.lr=0.2"], val_top1=None)

    assert report_main([str(sweep)]) == 1

    assert [r["status"] for r in read_csv(sweep / "summary.csv")] == ["failed"] * 2
    assert "every job of the sweep failed" in capsys.readouterr().err


@pytest.fixture
def hydra_context() -> Iterator[None]:
    GlobalHydra.instance().clear()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("name", ROOT_CONFIGS)
@pytest.mark.usefixtures("hydra_context")
def test_every_root_config_registers_the_sweep_callback(name: str) -> None:
    cfg = compose(config_name=name, return_hydra_config=True)

    targets = [node["_target_"] for node in cfg.hydra.callbacks.values()]

    assert SweepSummaryCallback in [get_class(t) for t in targets]


# --- real sweeps through the command line ---------------------------------


def run_sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``classifier-train -m`` (demo recipe) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "classifier_training.train", "--config-name",
         "train_demo", "-m", *TINY, *overrides],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_jsonl_dataset(
        tmp_path_factory.mktemp("sweep") / "data",
        per_class=4,
        eval_per_class=2,
        size=16,
    )


@pytest.fixture(scope="module")
def two_job_sweep(
    data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    sweep = tmp_path_factory.mktemp("two") / "multirun"
    result = run_sweep(
        data_root.parent,
        f"data.data_root={data_root}",
        "optimizer.lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep, result


@pytest.mark.slow
def test_a_two_job_sweep_writes_its_summary(
    two_job_sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    sweep, result = two_job_sweep

    rows = read_csv(sweep / "summary.csv")

    assert [r["job"] for r in rows] == ["0", "1"]
    assert [r["optimizer.lr"] for r in rows] == ["0.001", "0.003"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        assert 0.0 <= float(row["val_top1"]) <= 1.0
        assert row["epochs"] == "1"
        assert row["best_epoch"] == "0"
        assert Path(row["run_dir"]) == sweep / row["job"]
    assert (sweep / "summary.html").is_file()
    assert "Sweep: 2 jobs" in result.stdout


@pytest.mark.slow
def test_the_compare_page_of_a_sweep_lists_exactly_the_differing_config_keys(
    two_job_sweep: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    sweep, _ = two_job_sweep

    assert report_main(["--compare", str(sweep)]) == 0

    page = (sweep / "compare.html").read_text()
    assert [row[0] for row in section_rows(page, "config")] == ["optimizer.lr"]


@pytest.mark.slow
def test_a_failed_job_is_a_row_and_the_sweep_goes_on(
    data_root: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "multirun"
    missing = tmp_path / "no_such_data"

    result = run_sweep(
        tmp_path, f"data.data_root={missing},{data_root}", f"hydra.sweep.dir={sweep}"
    )

    assert result.returncode != 0  # Hydra's rule: a failed job fails the sweep
    rows = read_csv(sweep / "summary.csv")
    assert [r["data.data_root"] for r in rows] == [str(missing), str(data_root)]
    assert [r["status"] for r in rows] == ["failed", "ok"]  # the job after it ran
    assert rows[0]["error"] == f"{missing}: data root folder does not exist"
    assert "Sweep: 2 jobs" in result.stdout  # printed at exit


@pytest.mark.slow
def test_a_sweep_where_every_job_failed_still_writes_its_summary(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    missing = [tmp_path / "a", tmp_path / "b"]

    result = run_sweep(
        tmp_path,
        f"data.data_root={missing[0]},{missing[1]}",
        f"hydra.sweep.dir={sweep}",
    )

    assert result.returncode != 0
    rows = read_csv(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert [r["error"] for r in rows] == [
        f"{m}: data root folder does not exist" for m in missing
    ]
    status = json.loads((sweep / "0" / "job_status.json").read_text())
    assert "DataError" in status["detail"]  # the traceback is kept for the reader
