"""``classifier-report --compare``: hand-made run folders side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_training.report.cli import main as report_main
from classifier_training.report.compare import compare_runs
from tests.sweep_support import base_config, write_run
from tests.test_sweeps import section_rows


def _two_runs(root: Path) -> tuple[Path, Path]:
    a = write_run(
        root / "a",
        config=base_config(),
        classes={"7": 0.9, "23": 0.8, "<empty>": 1.0},
        # <empty> is not a class of b: its pairs are not compared
        confusions={("7", "23"): 2, ("<empty>", "7"): 3},
    )
    b = write_run(
        root / "b",
        config=base_config(
            **{
                "optimizer.lr": 0.003,
                "data.mean": [0.4, 0.5, 0.5],
                "model.label_smoothing": 0.1,
            }
        ),
        val_top1=0.85,
        classes={"7": 0.5, "23": 0.85, "5": 0.9},
        confusions={("23", "7"): 1},
    )
    return a, b


def test_the_page_lists_exactly_the_config_keys_that_differ(tmp_path: Path) -> None:
    a, b = _two_runs(tmp_path)
    out = tmp_path / "compare.html"

    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0

    rows = section_rows(out.read_text(), "config")
    assert [row[0] for row in rows] == [
        "data.mean",
        "model.label_smoothing",
        "optimizer.lr",
    ]
    assert rows[1][1:] == ["(absent)", "0.1"]
    assert rows[2][1:] == ["0.001", "0.003"]


def test_different_class_sets_are_compared_on_the_shared_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two_runs(tmp_path)
    out = tmp_path / "compare.html"

    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0

    err = capsys.readouterr().err
    assert "warning: the runs have different class sets" in err
    assert "'5' (only in b)" in err
    assert "'<empty>' (only in a)" in err
    per_class = section_rows(out.read_text(), "per-class")
    # Shared classes only, the largest change first: 7 (-40 pts), 23 (+5 pts).
    assert [row[0] for row in per_class] == ["7", "23"]
    assert per_class[0][1:] == ["90.00%", "50.00%", "40.00 pts"]


def test_confusion_pairs_that_appeared_or_disappeared(tmp_path: Path) -> None:
    a, b = _two_runs(tmp_path)

    out = tmp_path / "compare.html"
    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0

    rows = section_rows(out.read_text(), "confusions")
    assert rows == [
        ["b", "appeared", "23", "7", "1"],
        ["b", "disappeared", "7", "23", "2"],
    ]


def test_the_metrics_table_ranks_the_runs_best_first(tmp_path: Path) -> None:
    a, b = _two_runs(tmp_path)  # a: val top-1 0.80, b: 0.85

    out = tmp_path / "compare.html"
    assert report_main(["--compare", str(a), str(b), "-o", str(out)]) == 0

    rows = section_rows(out.read_text(), "metrics")
    assert [row[0] for row in rows] == ["b", "a"]
    assert rows[0][2] == "85.00%"


def test_a_sweep_folder_expands_to_its_jobs_and_seeds_form_settings(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    scores = {(0.1, 0): 0.80, (0.1, 1): 0.82, (0.01, 0): 0.70, (0.01, 1): 0.72}
    for job, ((lr, seed), score) in enumerate(scores.items()):
        config = base_config(**{"optimizer.lr": lr, "seed": seed})
        overrides = [f"optimizer.lr={lr}", f"seed={seed}"]
        write_run(sweep / str(job), overrides=overrides, config=config, val_top1=score)

    comparison = compare_runs([sweep])

    assert comparison.labels == ("0", "1", "2", "3")
    assert comparison.config_keys == ("optimizer.lr", "seed")
    assert report_main(["--compare", str(sweep)]) == 0
    settings = section_rows((sweep / "compare.html").read_text(), "seeds")
    assert [row[0] for row in settings] == ["optimizer.lr=0.1", "optimizer.lr=0.01"]
    assert settings[0][2] == "0, 1"


def test_a_run_that_did_not_finish_is_listed_but_not_compared(tmp_path: Path) -> None:
    a, _ = _two_runs(tmp_path)
    unfinished = write_run(tmp_path / "c", val_top1=None)

    comparison = compare_runs([a, unfinished])

    assert comparison.finished == [0]
    assert any(w.startswith("c did not finish") for w in comparison.warnings)


def test_a_folder_that_is_not_a_run_or_a_sweep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _two_runs(tmp_path)
    stray = tmp_path / "photos"
    stray.mkdir()

    assert report_main(["--compare", str(a), str(stray)]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {stray}: not a run folder")


def test_compare_needs_two_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = _two_runs(tmp_path)

    assert report_main(["--compare", str(a)]) == 2

    assert "needs at least two runs" in capsys.readouterr().err


def test_several_folders_without_compare_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _two_runs(tmp_path)

    assert report_main([str(a), str(b)]) == 2

    assert "need --compare" in capsys.readouterr().err
