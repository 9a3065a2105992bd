"""The label audit's parts: folds, flags and reasons, the clean copy, start-up
checks and the review page (no training; ``test_audit_e2e.py`` trains)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from classifier_training.audit.clean import write_clean
from classifier_training.audit.cli import main as audit_main
from classifier_training.audit.folds import (
    assign_folds,
    auditable,
    class_coverage,
)
from classifier_training.audit.issues import (
    Flag,
    flag_split,
    pair_summary,
    track_candidates,
    write_issues,
)
from classifier_training.audit.plan import build_plan
from classifier_training.core.errors import UsageError
from classifier_training.core.groups import GroupKeyError, group_of
from classifier_training.core.readers import Sample, canonical_split, read_split
from classifier_training.core.row_refs import row_ref
from classifier_training.core.run_files import (
    LABEL_ISSUES_FILE,
    LABEL_ISSUES_HTML,
    SUMMARY_FILE,
)
from classifier_training.report.cli import main as report_main
from classifier_training.report.label_issues import build_label_issues_report
from tests.helpers import (
    class_image,
    make_jsonl_dataset,
    write_jsonl_split,
)

# -- folds ----------------------------------------------------------------------


def test_every_row_is_held_out_once_stratified_by_label() -> None:
    labels = ["a"] * 12 + ["b"] * 8 + ["c"] * 4
    fold_of = assign_folds(labels, None, 4, seed=3)
    assert sorted(set(fold_of.tolist())) == [0, 1, 2, 3]
    for label, rows in (("a", 12), ("b", 8), ("c", 4)):
        per_fold = Counter(
            int(f) for f, lab in zip(fold_of, labels, strict=True) if lab == label
        )
        assert per_fold == dict.fromkeys(range(4), rows // 4)
    assert np.array_equal(fold_of, assign_folds(labels, None, 4, seed=3))
    assert auditable(labels, fold_of).all()


def test_the_rows_of_a_group_share_a_fold() -> None:
    labels = ["a", "a", "b", "b"] * 6
    groups = [f"track{i // 2}" for i in range(len(labels))]  # pairs of frames
    fold_of = assign_folds(labels, groups, 3, seed=0)
    for group in set(groups):
        assert (
            len({int(f) for f, g in zip(fold_of, groups, strict=True) if g == group})
            == 1
        )
    assert sorted(set(fold_of.tolist())) == [0, 1, 2]


def test_small_classes_land_in_fewer_folds_and_a_single_row_is_not_audited() -> None:
    labels = ["a"] * 8 + ["b"] * 2 + ["c"]
    fold_of = assign_folds(labels, None, 4, seed=0)
    ok = auditable(labels, fold_of)
    assert ok[:10].all()
    assert not ok[10]
    notes = {c.label: c.message(4) for c in class_coverage(labels, fold_of, 4)}
    assert notes == {
        "b": "class 'b': 2 train row(s), in 2 of 4 folds: audited with fewer folds",
        "c": "class 'c': 1 train row(s), in 1 of 4 folds: not audited (no other "
        "row of the class to learn it from)",
    }


@pytest.mark.parametrize(
    ("labels", "groups", "folds", "message"),
    [
        (["a", "b"] * 4, None, 1, "--folds must be at least 2, got 1"),
        (["a", "b"] * 2, ["g1", "g1", "g2", "g2"], 3, "only 2 groups"),
        (["a", "b", "c"] * 2, None, 3, "no class has that many train rows"),
    ],
)
def test_impossible_fold_counts_are_refused(
    labels: list[str], groups: list[str] | None, folds: int, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        assign_folds(labels, groups, folds)


# -- flags and reasons ------------------------------------------------------------

CLASSES = ["", "13", "18"]
# Rows labelled "" (0-2), "13" (3-5), "18" (6-8). Thresholds, the mean
# self-confidence per class: t("") = (0.9+0.8+0.1)/3 = 0.6, t(13) = (0.8+0.7+0.3)/3
# = 0.6, t(18) = (0.9+0.3+0.05)/3 = 0.41667.
PROBS = np.array(
    [
        [0.90, 0.05, 0.05],
        [0.80, 0.10, 0.10],
        [0.10, 0.85, 0.05],  # "" read as 13 (0.85 >= 0.6): likely_readable, 0.75
        [0.10, 0.80, 0.10],
        [0.20, 0.70, 0.10],
        [0.30, 0.30, 0.40],  # 13 unsure: 18's 0.40 < 0.41667, "" 0.30 < 0.6 -> kept
        [0.05, 0.05, 0.90],
        [0.65, 0.05, 0.30],  # 18 read as "": likely_unreadable, 0.35
        [0.05, 0.90, 0.05],  # 18 read as 13: likely_wrong_label, 0.85
    ]
)
LABELS = ["", "", "", "13", "13", "13", "18", "18", "18"]
THRESHOLDS = np.array([0.6, 0.6, 1.25 / 3])


def rows_of(root: Path, labels: list[str]) -> list[Sample]:
    jsonl = root / "train" / "annotations.jsonl"
    return [
        Sample(root / "train" / f"{i}.png", label, jsonl, line=i + 1)
        for i, label in enumerate(labels)
    ]


def test_flags_are_ranked_by_margin_with_their_reasons(tmp_path: Path) -> None:
    samples = rows_of(tmp_path, LABELS)
    flags = flag_split(
        "train", samples, PROBS, CLASSES, np.ones(9, bool), THRESHOLDS, tmp_path,
        fold_of=[0, 1, 2] * 3,
    )  # fmt: skip
    assert [(f.ref, f.given, f.suggested, f.reason) for f in flags] == [
        ("train/annotations.jsonl:9", "18", "13", "likely_wrong_label"),
        ("train/annotations.jsonl:3", "", "13", "likely_readable"),
        ("train/annotations.jsonl:8", "18", "", "likely_unreadable"),
    ]
    assert [f.score for f in flags] == pytest.approx([0.85, 0.75, 0.35])
    assert (flags[2].p_given, flags[2].p_suggested, flags[2].fold) == (0.3, 0.65, 1)
    line = flags[0].to_json()
    assert line["annotations"].endswith("train/annotations.jsonl")
    assert (line["line"], line["given"], line["suggested"]) == (9, "18", "13")


def test_rows_not_audited_are_never_judged_by_confident_learning(
    tmp_path: Path,
) -> None:
    judged = np.ones(9, bool)
    judged[8] = False
    flags = flag_split(
        "train", rows_of(tmp_path, LABELS), PROBS, CLASSES, judged, THRESHOLDS,
        tmp_path,
    )  # fmt: skip
    assert [f.ref for f in flags] == [
        "train/annotations.jsonl:3",
        "train/annotations.jsonl:8",
    ]


def test_rows_that_disagree_with_their_track() -> None:
    labels = ["13", "13", "18", "7", "7", "", "13", "18", "5"]
    groups = ["A", "A", "A", "B", "B", "B", "C", "C", "\x00row:x"]
    # A: 18 is outvoted by 13; B: an unreadable frame is no disagreement; C: a
    # 13/18 pair, both rows flagged; the ungrouped row stands alone.
    assert track_candidates(labels, groups) == {2: ["13"], 6: ["18"], 7: ["13"]}


def test_a_track_disagreement_takes_the_suggestion_the_model_prefers(
    tmp_path: Path,
) -> None:
    labels = ["13", "13", "18", "18", "", "13", "18"]
    groups = ["A", "A", "A", "B", "B", "B", "C"]
    probs = np.array(
        [
            [0.0, 0.9, 0.1],
            [0.0, 0.9, 0.1],
            [0.0, 0.7, 0.3],  # outvoted 18 in A: track_disagrees -> 13, 0.4
            [0.1, 0.2, 0.7],  # B: 18 vs 13, once each: -> 13, -0.5
            [0.9, 0.05, 0.05],
            [0.1, 0.3, 0.6],  # B: 13 vs 18 -> 18, 0.3 (confident learning agrees)
            [0.1, 0.1, 0.8],
        ]
    )
    flags = flag_split(
        "val", rows_of(tmp_path, labels), probs, CLASSES, np.ones(7, bool),
        THRESHOLDS, tmp_path, groups=groups,
    )  # fmt: skip
    assert [(f.ref[-1], f.given, f.suggested, f.reason, f.track) for f in flags] == [
        ("3", "18", "13", "track_disagrees", "A"),
        ("6", "13", "18", "track_disagrees", "B"),
        ("4", "18", "13", "track_disagrees", "B"),
    ]
    assert [f.score for f in flags] == pytest.approx([0.4, 0.3, -0.5])


def test_among_tied_track_labels_the_model_picks_the_suggestion(
    tmp_path: Path,
) -> None:
    classes = ["1", "11", "7"]
    labels = ["1", "7", "11"]  # one track, three labels once each
    probs = np.array([[0.3, 0.6, 0.1], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1]])
    flags = flag_split(
        "train", rows_of(tmp_path, labels), probs, classes, np.zeros(3, bool),
        np.full(3, np.inf), tmp_path, groups=["T"] * 3,
    )  # fmt: skip
    # Row 1 ("1"): 7 and 11 are as frequent; the model prefers 11 (0.6 > 0.1).
    assert {f.ref[-1]: f.suggested for f in flags} == {"1": "11", "2": "1", "3": "1"}


def test_class_pairs_count_and_share_of_the_given_class(tmp_path: Path) -> None:
    samples = rows_of(tmp_path, LABELS)
    flags = flag_split(
        "train", samples, PROBS, CLASSES, np.ones(9, bool), THRESHOLDS, tmp_path
    )
    pairs = pair_summary(flags + flags[:1], Counter(LABELS))
    assert pairs[0] == {
        "given": "18",
        "suggested": "13",
        "count": 2,
        "share_of_given": pytest.approx(2 / 3),
        "reasons": {"likely_wrong_label": 2},
        "splits": {"train": 2},
    }
    assert [(p["given"], p["suggested"]) for p in pairs[1:]] == [("", "13"), ("18", "")]


# -- the clean copy ----------------------------------------------------------------


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def flags_for(root: Path, folder: str, picks: dict[int, str]) -> list[Flag]:
    samples = read_split(root / folder)
    split = canonical_split(folder)
    return [
        Flag(split, samples[i], row_ref(samples[i], root), samples[i].label, new,
             0.1, 0.9, "likely_wrong_label")
        for i, new in picks.items()
    ]  # fmt: skip


@pytest.mark.parametrize("relabel", [False, True])
def test_write_clean_copies_the_root_without_or_relabelling_flagged_lines(
    jsonl_root: Path, tmp_path: Path, relabel: bool
) -> None:
    (jsonl_root / ".cache").mkdir()
    (jsonl_root / ".cache" / "x.npy").write_bytes(b"cache")
    before = digest(jsonl_root)
    flags = flags_for(jsonl_root, "train", {1: "23", 7: ""})
    flags += flags_for(jsonl_root, "valid", {0: "7"})
    changed = write_clean(jsonl_root, tmp_path / "clean", flags, relabel=relabel)

    assert digest(jsonl_root) == before  # the originals are only read
    assert changed == {"train": 2, "val": 1}
    clean = tmp_path / "clean"
    assert not (clean / ".cache").exists()
    original = (jsonl_root / "train/annotations.jsonl").read_text().splitlines()
    copied = (clean / "train/annotations.jsonl").read_text().splitlines()
    if relabel:
        assert len(copied) == len(original)
        assert [json.loads(copied[i])["suffix"] for i in (1, 7)] == ["23", ""]
        assert copied[0] == original[0]
        assert copied[2:7] == original[2:7]
    else:
        assert copied == [t for i, t in enumerate(original) if i not in (1, 7)]
    valid = (clean / "valid/annotations.jsonl").read_text().splitlines()
    assert len(valid) == (6 if relabel else 5)
    assert (clean / "test/annotations.jsonl").read_bytes() == (
        jsonl_root / "test/annotations.jsonl"
    ).read_bytes()


@pytest.mark.parametrize("relabel", [False, True])
def test_write_clean_in_the_folder_layout_moves_or_drops_images(
    folder_root: Path, tmp_path: Path, relabel: bool
) -> None:
    flags = flags_for(folder_root, "train", {0: "dog"})  # train/cat/0.png
    write_clean(folder_root, tmp_path / "clean", flags, relabel=relabel)
    clean = tmp_path / "clean" / "train"
    assert not (clean / "cat" / "0.png").exists()
    assert (clean / "cat" / "1.png").is_file()
    assert (clean / "dog" / "cat_0.png").is_file() is relabel  # dog has a 0.png
    assert (folder_root / "train" / "cat" / "0.png").is_file()


def test_write_clean_refuses_a_folder_inside_the_root_or_with_files(
    jsonl_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="outside the dataset root"):
        write_clean(jsonl_root, jsonl_root / "clean", [])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="not an empty folder"):
        write_clean(jsonl_root, tmp_path / "full", [])


# -- start-up checks (no training) ----------------------------------------------------


def test_bad_arguments_end_in_one_line_before_training(
    jsonl_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    for argv, message in (
        (["--folds", "1"], "error: --folds must be at least 2, got 1"),
        (["data.data_root=/x"], "the audit sets data.data_root itself"),
        (["data.nope=1"], "--config-name train_demo:"),
        (["--splits", "train,dev"], "--splits: unknown split 'dev'"),
        (["--relabel"], "--relabel needs --write-clean"),
        (["--write-clean", str(jsonl_root / "c")], "outside the dataset root"),
    ):
        code = audit_main(
            [str(jsonl_root), "--out", str(out), "--config-name", "train_demo", *argv]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1, (argv, err)
        assert message in err[0], (argv, err)
    assert not (out / "folds").exists()  # nothing trained


def test_a_folder_that_is_not_an_audit_is_refused(
    jsonl_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an audit folder"):
        build_plan(jsonl_root, tmp_path, config_name="train_demo")


def test_a_group_key_on_class_folders_is_refused(
    folder_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(GroupKeyError, match="class-folder layout has none"):
        build_plan(folder_root, tmp_path / "a", config_name="train_demo", group_by="t")


def test_a_missing_split_to_audit_is_refused(tmp_path: Path) -> None:
    root = make_jsonl_dataset(tmp_path / "data", with_test=False)
    with pytest.raises(UsageError, match=r"--splits test: .* has no test rows"):
        build_plan(root, tmp_path / "a", config_name="train_demo", splits=("test",))


def test_the_plan_groups_tracks_and_reports_small_classes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    extra = [
        {"image": "images/c1_0.png", "suffix": "99", "metadata": {"track": "t9"}},
    ]
    write_jsonl_split(root / "train", ["7", "23"], 6, extra_rows=extra)
    write_jsonl_split(root / "valid", ["7", "23"], 2)
    plan = build_plan(
        root, tmp_path / "a", config_name="train_demo", group_by="variant", folds=2
    )
    assert plan.group_key == "variant"
    assert "data.group_key=variant" in plan.overrides
    assert "~callbacks.onnx_export" in plan.overrides
    groups = [group_of(s, "variant") for s in plan.rows["train"]]
    for group in set(groups):  # metadata.variant: 0 or 1, or none (own group)
        assert (
            len({int(plan.fold_of[i]) for i, g in enumerate(groups) if g == group}) == 1
        )
    assert [c.message(2) for c in plan.coverage] == [
        "class '99': 1 train row(s), in 1 of 2 folds: not audited (no other row of "
        "the class to learn it from)"
    ]


# -- the review page -----------------------------------------------------------------


def test_the_review_page_groups_rows_by_class_pair_with_crops_and_lines(
    tmp_path: Path,
) -> None:
    images = tmp_path / "train"
    images.mkdir()
    labels = ["7", "7", "1", ""]
    for i in range(4):
        class_image(i, 0, size=24 if i else 96).save(images / f"{i}.png")
    samples = rows_of(tmp_path, labels)
    suggested = ["1", "1", "7", "4"]
    flags = [
        Flag("train", s, row_ref(s, tmp_path), s.label, new, 0.1, 0.8 - i / 10,
             "likely_wrong_label")
        for i, (s, new) in enumerate(zip(samples, suggested, strict=True))
    ]  # fmt: skip
    write_issues(tmp_path / LABEL_ISSUES_FILE, flags)
    (tmp_path / SUMMARY_FILE).write_text(
        json.dumps({"pairs": pair_summary(flags, Counter(labels)), "folds": 4})
    )
    page = build_label_issues_report(tmp_path).read_text()
    review = page[page.index('id="review"') :]
    assert review.index("7 &rarr; 1 (2)") < review.index("1 &rarr; 7 (1)")
    assert f"{tmp_path}/train/annotations.jsonl:2" in review
    assert review.count('src="data:image/') == 4
    assert review.count('class="pixelated"') == 3  # 24 px crops: sharp pixels
    assert "&lt;empty&gt; &rarr; 4" in review

    truncated = build_label_issues_report(tmp_path, max_rows=2).read_text()
    assert "the 2 most suspicious of 4 flagged rows" in truncated
    assert truncated.count('src="data:image/') == 2

    (tmp_path / LABEL_ISSUES_HTML).unlink()  # classifier-report rebuilds it
    assert report_main([str(tmp_path)]) == 0
    assert (tmp_path / LABEL_ISSUES_HTML).read_text().count('src="data:image/') == 4
