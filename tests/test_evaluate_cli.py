"""``classifier-evaluate`` end to end, on a model whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier_training.inference.evaluate import main
from tests.inference_support import (
    TrainedRun,
    run_main_without_heavy_imports,
    write_color_image,
)

# (true label, colour of the image): the colour model predicts the colour, so
# two rows are wrong (red->green, blue->red) and "purple" is unknown to it.
ROWS = [
    ("red", "red"), ("red", "red"), ("red", "red"), ("red", "green"),
    ("green", "green"), ("green", "green"),
    ("blue", "blue"), ("blue", "blue"), ("blue", "red"),
    ("purple", "red"), ("purple", "blue"),
]  # fmt: skip


def write_known_split(root: Path, layout: str) -> Path:
    """Write ``root/test`` in the given layout from :data:`ROWS`."""
    split = root / "test"
    lines = []
    for i, (label, color) in enumerate(ROWS):
        if layout == "folder":
            write_color_image(split / label / f"{i}.png", color, i)
        else:
            write_color_image(split / "images" / f"{i}.png", color, i)
            lines.append(json.dumps({"image": f"images/{i}.png", "suffix": label}))
    if layout == "jsonl":
        (split / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("layout", ["folder", "jsonl"])
def test_known_answers(
    color_model: Path,
    tmp_path: Path,
    layout: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = write_known_split(tmp_path / "data", layout)
    out = tmp_path / "report"
    code = main(
        ["--model", str(color_model), "--data-root", str(root), "--out", str(out)]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_rows"] == 9
    assert summary["excluded_rows"] == {"count": 2, "labels": {"purple": 2}}
    assert summary["top1"] == pytest.approx(7 / 9)
    assert summary["top5"] == pytest.approx(1.0)
    assert summary["top5_k"] == 3
    # Hand computation: red 3/4 predicted right, 4 predicted red (one blue row);
    # green 2/2, predicted 3 times; blue 2/3, predicted twice.
    expected = {
        "red": (3 / 4, 3 / 4, 4),
        "green": (2 / 3, 1.0, 2),
        "blue": (1.0, 2 / 3, 3),
    }
    for name, (precision, recall, rows) in expected.items():
        row = summary["per_class"][name]
        assert row["precision"] == pytest.approx(precision)
        assert row["recall"] == pytest.approx(recall)
        f1 = 2 * precision * recall / (precision + recall)
        assert row["f1"] == pytest.approx(f1)
        assert row["support"] == rows
    assert summary["macro"]["recall"] == pytest.approx((3 / 4 + 1 + 2 / 3) / 3)
    assert [
        (p["true"], p["predicted"], p["count"]) for p in summary["most_confused"]
    ] == [
        ("blue", "red", 1),
        ("red", "green", 1),
    ]
    mistakes = summary["confident_mistakes"]
    assert {(m["true"], m["predicted"]) for m in mistakes} == {
        ("red", "green"),
        ("blue", "red"),
    }
    assert mistakes[0]["confidence"] >= mistakes[1]["confidence"] > 0.5
    for name in ("confusion_matrix.png", "mistakes.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr()
    assert "most confused" in printed.out
    assert "top-1 77.78%" in printed.out
    assert "excluded 2 row(s)" in printed.err


def test_checkpoint_model_and_default_out(
    trained_run: TrainedRun,
) -> None:
    code = main(
        [
            "--model", str(trained_run.checkpoint),
            "--data-root", str(trained_run.data_root),
            "--split", "valid",
        ]
    )  # fmt: skip
    assert code == 0
    summary_file = trained_run.run_dir / "eval" / "val" / "summary.json"
    summary = json.loads(summary_file.read_text())
    assert summary["num_rows"] == 12
    val_metrics = trained_run.metrics["val"]
    assert isinstance(val_metrics, dict)
    assert abs(summary["top1"] - val_metrics["acc_top1"]) <= 0.001
    # 3 classes: every row is in the top 3, in training's numbers as here.
    assert summary["top5"] == val_metrics["acc_top5"] == 1.0


def test_bad_inputs_exit_2_with_named_file(
    color_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = write_known_split(tmp_path / "data", "jsonl")
    model = str(color_model)
    assert main(["--model", model, "--data-root", str(root), "--split", "valid"]) == 2
    assert "no valid/ (or val/) split folder" in capsys.readouterr().err
    missing = tmp_path / "none.onnx"
    assert main(["--model", str(missing), "--data-root", str(root)]) == 2
    assert f"{missing}: model file not found" in capsys.readouterr().err
    (root / "test" / "images" / "4.png").unlink()
    assert main(["--model", model, "--data-root", str(root)]) == 2
    assert "annotations.jsonl:5: image file not found" in capsys.readouterr().err
    (root / "test" / "images" / "4.png").write_text("not an image")
    assert main(["--model", model, "--data-root", str(root)]) == 2
    assert "4.png: cannot read image" in capsys.readouterr().err
    only_unknown = tmp_path / "unknown"
    write_color_image(only_unknown / "test" / "cat" / "0.png", "red", 0)
    assert main(["--model", model, "--data-root", str(only_unknown)]) == 2
    assert "no rows with a label the model knows (1 excluded)" in (
        capsys.readouterr().err
    )


def test_onnx_evaluation_imports_neither_torch_nor_lightning(
    color_model: Path, tmp_path: Path
) -> None:
    root = write_known_split(tmp_path / "data", "jsonl")
    args = ["--model", str(color_model), "--data-root", str(root)]
    args += ["--out", str(tmp_path / "out")]
    code, heavy, _ = run_main_without_heavy_imports(
        "classifier_training.inference.evaluate", args
    )
    assert (code, heavy) == (0, [])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_rows"] == 9


def test_files_that_are_not_models_exit_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_known_split(tmp_path / "data", "folder")
    for name, says in (("x.ckpt", "not a checkpoint"), ("x.onnx", "no labels_map")):
        junk = tmp_path / name
        junk.write_text("junk\n")
        assert main(["--model", str(junk), "--data-root", str(root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {junk}: {says}")
        assert err.count("\n") == 1
