"""report.html of a real tiny run and of classifier-evaluate; its calibration."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from classifier_training.checkpoints import read_checkpoint
from classifier_training.core.calibration import softmax
from classifier_training.core.contract import read_labels_mapping
from classifier_training.inference import CheckpointClassifier, ONNXClassifier
from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.report import (
    EVALUATION_SECTIONS,
    RUN_SECTIONS,
    ReportError,
    build_run_report,
)
from classifier_training.report.cli import main as report_main
from classifier_training.report.sections import per_class_table
from tests.inference_support import TrainedRun, calibrated_copy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PageParser(HTMLParser):
    """Collects section ids, image sources, links and whether tags balance."""

    VOID = frozenset({"img", "meta", "br", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.stack: list[str] = []
        self.mismatched: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.sections.append(str(values.get("id")))
        if tag == "img":
            self.images.append(str(values.get("src")))
        if tag == "a":
            self.links.append(str(values.get("href")))
        if tag == "script":
            self.scripts.append(str(values.get("src")))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.mismatched.append(tag)


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.mismatched, parser.mismatched
    assert not parser.stack, parser.stack
    return parser


def assert_images_resolve(page: PageParser, folder: Path) -> None:
    """Every image is embedded PNG data or an existing file; nothing is remote."""
    assert page.images
    for source in page.images:
        if source.startswith("data:image/png;base64,"):
            data = base64.b64decode(source.split(",", 1)[1])
            assert data.startswith(PNG_MAGIC)
        else:
            assert "://" not in source, source
            assert (folder / source).is_file(), source
    assert all(src == "None" for src in page.scripts)  # inline scripts only


def test_run_report_has_every_section_and_resolves(trained_run: TrainedRun) -> None:
    report = trained_run.run_dir / "report.html"
    assert report.is_file()  # written at the end of fit
    page = parse_page(report)
    assert page.sections == list(RUN_SECTIONS)
    assert_images_resolve(page, trained_run.run_dir)
    for link in page.links:
        if not link.startswith("#"):
            assert (trained_run.run_dir / link).is_file(), link
    assert {"model.onnx", "labels_mapping.json"} <= set(page.links)
    text = report.read_text(encoding="utf-8")
    assert "classifier-train --config-name train_demo" in text
    assert "Temperature <b>T = " in text
    assert "sorted by F1" in text
    assert "http://" not in text
    assert "https://" not in text


def test_calibration_is_recorded_everywhere(trained_run: TrainedRun) -> None:
    calibration = trained_run.metrics["calibration"]
    assert isinstance(calibration, dict)
    temperature = calibration["temperature"]
    assert temperature > 0
    contract = read_labels_mapping(trained_run.run_dir / "labels_mapping.json")
    assert contract.format_version == 5
    assert contract.temperature == pytest.approx(temperature)
    stored = read_checkpoint(trained_run.checkpoint)
    states = [v for v in stored.values() if isinstance(v, dict) and v]
    assert any(
        v.get("deployment_contract", {}).get("temperature") == temperature
        for v in states
    )
    for split in ("val", "test"):
        entry = calibration[split]
        assert 0 <= entry["ece_after"] <= 1
        assert 0 <= entry["ece_before"] <= 1
        coverage = [r["coverage"] for r in entry["risk_coverage"]]
        assert coverage == sorted(coverage, reverse=True)
        per_class = trained_run.metrics[split]["per_class"]  # type: ignore[index]
        assert sum(row["support"] for row in per_class.values()) == entry["rows"]
    # Validation is what the temperature minimises the NLL of.
    assert calibration["val"]["nll_after"] <= calibration["val"]["nll_before"] + 1e-9
    assert (trained_run.run_dir / "reliability_diagram.png").is_file()


def test_both_classifiers_apply_the_temperature(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    trained_run = calibrated_copy(trained_run, tmp_path / "run", 2.5)
    images = sorted((trained_run.data_root / "test").rglob("*.png"))[:6]
    onnx = ONNXClassifier(trained_run.onnx)
    ckpt = CheckpointClassifier(trained_run.checkpoint)
    temperature = onnx.temperature
    assert temperature != 1.0
    assert ckpt.temperature == pytest.approx(temperature)
    batch = onnx.preprocessor.batch(images)
    raw = onnx.predict_logits(batch)
    expected = softmax(raw, temperature)
    np.testing.assert_allclose(onnx.predict_proba(batch), expected, atol=1e-6)
    np.testing.assert_allclose(ckpt.predict_proba(batch), expected, atol=1e-4)
    # The graph itself stays raw: dividing is the deployment's job.
    assert not np.allclose(softmax(raw), expected, atol=1e-3)


def test_evaluate_writes_risk_coverage_and_its_page(
    trained_run: TrainedRun, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    argv = ["--model", str(trained_run.onnx), "--data-root", str(trained_run.data_root)]
    assert evaluate_main([*argv, "--split", "test", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["risk_coverage"]
    assert [r["threshold"] for r in rows] == sorted(r["threshold"] for r in rows)
    kept = [r["kept"] for r in rows]
    assert kept[0] == summary["num_rows"]
    assert kept == sorted(kept, reverse=True)
    calibration = summary["calibration"]
    test = trained_run.metrics["calibration"]["test"]  # type: ignore[index]
    # ONNX evaluation reproduces the run's calibrated and uncalibrated ECE.
    assert calibration["ece"] == pytest.approx(test["ece_after"], abs=1e-4)
    assert calibration["ece_uncalibrated"] == pytest.approx(
        test["ece_before"], abs=1e-4
    )
    page = parse_page(out / "report.html")
    assert page.sections == list(EVALUATION_SECTIONS)
    assert_images_resolve(page, out)
    # classifier-report rebuilds the same kind of page from the folder.
    (out / "report.html").unlink()
    assert report_main([str(out)]) == 0
    assert parse_page(out / "report.html").sections == list(EVALUATION_SECTIONS)


def test_classifier_report_rebuilds_a_run_page(
    trained_run: TrainedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(
        trained_run.run_dir, copy, ignore=shutil.ignore_patterns("*.ckpt", "*.onnx")
    )
    (copy / "report.html").unlink()
    (copy / "augmentation_preview.png").write_bytes(
        (copy / "reliability_diagram.png").read_bytes()
    )
    assert report_main([str(copy)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {copy / 'report.html'}"
    page = parse_page(copy / "report.html")
    assert page.sections == list(RUN_SECTIONS)
    assert "model.onnx" not in page.links  # only existing files are linked
    text = (copy / "report.html").read_text(encoding="utf-8")
    assert "training images after augmentation" in text


def test_a_sparse_run_folder_still_gets_every_section(tmp_path: Path) -> None:
    """A run with its callbacks off: each section says what is missing."""
    (tmp_path / "metrics.json").write_text(
        json.dumps({"val": {"acc_top1": 0.5, "per_class_acc": {"a": 1.0, "b": 0.0}}})
    )
    page = parse_page(build_run_report(tmp_path))
    assert page.sections == list(RUN_SECTIONS)
    assert page.images == []
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "this run was not calibrated" in text
    assert "no augmentation_preview.png" in text


def test_a_folder_without_results_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: neither metrics.json")
    assert err.count("\n") == 1
    with pytest.raises(ReportError, match=r"neither metrics\.json nor \.hydra"):
        build_run_report(tmp_path)


def test_per_class_table_is_sorted_by_f1_and_sortable() -> None:
    scores = {
        name: {"precision": f1, "recall": f1, "f1": f1, "support": 3}
        for name, f1 in (("a", 0.9), ("b", 0.1), ("c", 0.5), ("<empty>", 0.5))
    }
    markup = per_class_table(scores)
    cells = (">b</td>", ">(none)</td>", ">c</td>", ">a</td>")
    order = [markup.index(cell) for cell in cells]
    assert order == sorted(order)  # worst F1 first, ties in natural order
    assert '<table class="sortable">' in markup
    assert 'data-value="0.1"' in markup  # sorts by the number, not the text
