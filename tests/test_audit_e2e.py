"""``classifier-audit-labels`` end to end: folds trained by ``classifier-train`` on a
tiny dataset with planted wrong labels, found, reviewed, cleaned, resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from classifier_training.core.row_refs import read_row_list
from tests.helpers import make_jsonl_dataset

REPO = Path(__file__).resolve().parents[1]
# Planted in train/annotations.jsonl (classes "", "7", "23"; 10 rows each, in that
# order): line -> (true label, planted label).
PLANTED = {2: ("", "7"), 15: ("7", "23"), 30: ("23", "")}
FAST = [
    "data.image_size=16",
    "data.batch_size=8",
    "data.num_workers=0",
    "data.augment_on=workers",
    "trainer.max_epochs=8",  # fewer: the tiny folds' models are still guessing
    "callbacks=[model_checkpoint]",
]


def audit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "classifier_training.audit.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.slow
def test_planted_wrong_labels_are_found_reviewed_and_cleaned(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", per_class=10, eval_per_class=3)
    jsonl = root / "train" / "annotations.jsonl"
    lines = jsonl.read_text().splitlines()
    for number, (true, planted) in PLANTED.items():
        row = json.loads(lines[number - 1])
        assert row["suffix"] == true
        lines[number - 1] = json.dumps({**row, "suffix": planted})
    jsonl.write_text("\n".join(lines) + "\n")
    out = tmp_path / "audit"
    command = [
        str(root), "--out", str(out), "--folds", "2", "--splits", "train,valid",
        "--config-name", "train_demo", *FAST,
    ]  # fmt: skip

    result = audit(tmp_path, *command, "--write-clean", str(tmp_path / "clean"))

    issues = [json.loads(t) for t in (out / "label_issues.jsonl").open()]
    top = {(i["line"], i["given"], i["suggested"], i["reason"]) for i in issues[:3]}
    assert top == {
        (2, "7", "", "likely_unreadable"),
        (15, "23", "7", "likely_wrong_label"),
        (30, "", "23", "likely_readable"),
    }
    assert all(i["annotations"] == str(jsonl.resolve()) for i in issues[:3])
    # No row is predicted by a model that trained on it: the folds' held-out
    # lists split the train rows, and each fold trained on the others only.
    held = [read_row_list(out / "folds" / str(k) / "held_out_rows.txt") for k in (0, 1)]
    assert not set(held[0]) & set(held[1])
    assert len(held[0]) + len(held[1]) == 30
    for k in (0, 1):
        metrics = json.loads((out / "folds" / str(k) / "run/metrics.json").read_text())
        assert metrics["data"]["splits"]["train"]["rows"] == 30 - len(held[k])
        fold = json.loads((out / "folds" / str(k) / "fold.json").read_text())
        assert fold["held_out"] == len(held[k])
    for issue in issues:  # each flagged row was held out by the fold that read it
        assert issue["split"] == "val" or issue["row"] in held[issue["fold"]]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["train"]["audited"] == 30
    assert summary["rows"]["val"]["audited"] == 9
    assert {(p["given"], p["suggested"]) for p in summary["pairs"]} >= {
        ("7", ""), ("23", "7"), ("", "23"),
    }  # fmt: skip
    assert "Flagged rows by class pair" in result.stdout
    page = (out / "label_issues.html").read_text()
    assert f"{jsonl.resolve()}:15" in page
    flagged = read_row_list(out / "flagged_train_rows.txt")
    assert {f"train/annotations.jsonl:{n}" for n in PLANTED} <= set(flagged)

    clean = (tmp_path / "clean" / "train" / "annotations.jsonl").read_text()
    assert len(clean.splitlines()) == 30 - len(flagged)
    assert jsonl.read_text().splitlines() == lines  # the original is untouched

    again = audit(tmp_path, *command)
    assert again.stdout.count("finished earlier, reused") == 2
    assert (out / "label_issues.jsonl").read_text().splitlines()[:3] == [
        json.dumps(i) for i in issues[:3]
    ]
