"""Track-level answers of a trained model: the Python API and
``classifier-predict --group-by``, on a model whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.core.groups import GroupKeyError
from classifier_training.core.readers import Sample
from classifier_training.core.tracks import aggregate_track
from classifier_training.inference import load_classifier
from classifier_training.inference.predict import main
from classifier_training.inference.tracks import (
    check_track_key,
    evaluate_tracks,
    plot_worst_tracks,
)
from tests.inference_support import run_main_without_heavy_imports, write_color_image


@pytest.fixture
def crops(tmp_path: Path) -> dict[str, Path]:
    """Colour crops the colour model reads as their colour."""
    return {
        name: write_color_image(tmp_path / "crops" / f"{name}.png", color, variant)
        for name, color, variant in (
            ("red1", "red", 0),
            ("red2", "red", 1),
            ("green1", "green", 0),
            ("green2", "green", 1),
            ("blue1", "blue", 0),
        )
    }


def write_tracks(path: Path, rows: list[tuple[str, str | None]]) -> Path:
    """A JSONL file of ``(image, track id or None)`` rows (image relative)."""
    lines = []
    for image, track in rows:
        row: dict[str, object] = {"image": image}
        if track is not None:
            row["metadata"] = {"clip": {"track": track}}
        lines.append(json.dumps(row) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def track_file(crops: dict[str, Path]) -> Path:
    """Track ``a``: red, red, green; track ``b``: blue; one row without a track."""
    return write_tracks(
        crops["red1"].parent.parent / "tracks.jsonl",
        [
            ("crops/red1.png", "a"),
            ("crops/green1.png", "a"),
            ("crops/blue1.png", "b"),
            ("crops/green2.png", None),
            ("crops/red2.png", "a"),
        ],
    )


def test_a_track_of_crops_gets_one_answer(
    color_model: Path, crops: dict[str, Path]
) -> None:
    classifier = load_classifier(color_model)
    images = [crops["red1"], crops["green1"], crops["red2"]]
    answer = classifier.predict_track(images, rule="vote", batch_size=2)
    assert (answer.label, answer.frames, answer.frames_used) == ("red", 3, 3)
    # The same rule on the per-crop probabilities the classifier gives.
    per_crop = [classifier.predict(path, top_k=3) for path in images]
    table = [
        [next(s.probability for s in p.top_k if s.label == name) for name in names]
        for p in per_crop
        for names in [classifier.class_names]
    ]
    expected = aggregate_track(table, classifier.class_names, "vote")
    assert answer.confidence == pytest.approx(expected.confidence)
    assert 0.5 < answer.confidence < 0.9  # the green crop voted elsewhere

    tracks = classifier.predict_tracks(
        [crops["blue1"], *images], ["b", "a", "a", "a"], rule="vote"
    )
    assert list(tracks) == ["b", "a"]
    assert tracks["a"] == answer
    assert tracks["b"].label == "blue"


def test_a_track_below_the_threshold_abstains(
    color_model: Path, crops: dict[str, Path]
) -> None:
    classifier = load_classifier(color_model)
    split = [crops["red1"], crops["green1"]]
    answer = classifier.predict_track(split, rule="mean", min_confidence=0.6)
    assert answer.abstained
    assert answer.best in ("red", "green")
    assert answer.confidence < 0.6
    with pytest.raises(ValueError, match="one crop at least"):
        classifier.predict_track([])
    with pytest.raises(ValueError, match="1 track ids for 2 crops"):
        classifier.predict_tracks(split, ["a"])


def test_predict_prints_one_line_per_track(
    color_model: Path, track_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(color_model), str(track_file), "--group-by", "clip.track"]) == 0
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(track, label, used) for track, label, _, used in lines] == [
        ("a", "red", "3/3"),
        ("b", "blue", "1/1"),
        (f"{track_file}:4", "green", "1/1"),
    ]
    assert all(0.5 < float(conf) <= 1.0 for _, _, conf, _ in lines)
    assert f"{track_file}: 1 of 5 row(s) have no metadata.clip.track" in err


def test_predict_tracks_as_json_lines_with_abstention(
    color_model: Path, crops: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = crops["red1"].parent.parent / "split"
    folder.mkdir()
    write_tracks(
        folder / "annotations.jsonl",
        [
            ("../crops/red1.png", "a"),
            ("../crops/green1.png", "a"),
            ("../crops/blue1.png", "b"),
        ],
    )
    argv = [str(color_model), str(folder), "--group-by", "clip.track", "--json"]
    argv += ["--rule", "mean", "--min-confidence", "0.6"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["track"] for r in rows] == ["a", "b"]
    assert rows[0]["label"] == "unsure"
    assert rows[0]["unsure"] is True
    assert rows[0]["best"] in ("red", "green")
    assert (rows[0]["frames"], rows[0]["frames_used"]) == (2, 2)
    assert rows[1]["label"] == rows[1]["best"] == "blue"
    assert rows[1]["unsure"] is False


def test_missing_frames_are_named_and_the_rest_answered(
    color_model: Path, crops: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    jsonl = write_tracks(
        crops["red1"].parent / "t.jsonl",
        [("red1.png", "a"), ("gone.png", "a"), ("also-gone.png", "c")],
    )
    assert main([str(color_model), str(jsonl), "--group-by", "clip.track"]) == 1
    out, err = capsys.readouterr()
    assert [line.split("\t")[:2] for line in out.splitlines()] == [["a", "red"]]
    assert out.split("\t")[3].strip() == "1/1"
    assert f"error: {jsonl}:2: " in err
    assert "gone.png" in err
    assert "error: track c: no readable frame" in err


def test_bad_group_by_usage_is_one_line_exit_2(
    color_model: Path,
    track_file: Path,
    crops: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = str(color_model)
    assert main([model, str(track_file), "--group-by", "track_id"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{track_file}: no row has metadata.track_id" in err
    assert main([model, str(crops["red1"]), "--group-by", "track_id"]) == 2
    assert f"{crops['red1']}: --group-by reads JSONL" in capsys.readouterr().err
    assert main([model, str(crops["red1"]), "--rule", "vote"]) == 2
    assert "--group-by" in capsys.readouterr().err
    broken = track_file.with_name("broken.jsonl")
    broken.write_text('{"image": "crops/red1.png"}\n{not json\n', encoding="utf-8")
    assert main([model, str(broken), "--group-by", "track_id"]) == 2
    assert f"{broken}:2: not valid JSON" in capsys.readouterr().err


def test_onnx_tracks_import_no_torch(color_model: Path, track_file: Path) -> None:
    argv = [str(color_model), str(track_file), "--group-by", "clip.track"]
    code, heavy, stdout = run_main_without_heavy_imports(
        "classifier_training.inference.predict", argv
    )
    assert code == 0
    assert heavy == []
    assert stdout.startswith("a\tred\t")


def test_probabilities_match_the_single_image_path(
    color_model: Path, crops: dict[str, Path]
) -> None:
    classifier = load_classifier(color_model)
    paths = list(crops.values())
    table = classifier.probabilities(paths, batch_size=2)
    assert table.shape == (len(paths), 3)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    for row, path in zip(table, paths, strict=True):
        assert classifier.class_names[int(row.argmax())] == path.stem.rstrip("12")


# -- the tracks section of classifier-evaluate --------------------------------------
def _rows(folder: Path, spec: list[tuple[str, str | None]]) -> list[Sample]:
    """Samples of colour images: ``(label, track)`` per row."""
    colours = {"red": "red", "green": "green", "blue": "blue", "": "green"}
    rows = []
    for line, (label, track) in enumerate(spec, start=1):
        image = write_color_image(folder / f"{line}.png", colours[label], line)
        meta = {"track_id": track} if track is not None else {}
        rows.append(Sample(image, label, folder / "annotations.jsonl", line, meta))
    return rows


NAMES3 = ["", "blue", "red"]


def test_the_tracks_section_scores_each_track_against_its_truth(
    tmp_path: Path,
) -> None:
    samples = _rows(
        tmp_path,
        [("red", "t1"), ("", "t1"), ("red", "t1"), ("blue", "t2"), ("blue", None)],
    )
    probs = np.array(
        [
            [0.1, 0.2, 0.7],  # t1: red
            [0.8, 0.1, 0.1],  # t1: illegible, left out
            [0.0, 0.7, 0.3],  # t1: blue (wrong frame)
            [0.0, 0.1, 0.9],  # t2: red, a wrong track
            [0.1, 0.8, 0.1],  # own track: blue
        ]
    )
    tracks = evaluate_tracks(probs, NAMES3, samples, "track_id", "logprob")
    summary = tracks.summary(frame_top1=0.4, worst=5)
    # t1: log(.7/.9) + log(.3) vs log(.2/.9) + log(.7): red .233 > blue .156.
    assert tracks.answers["t1"].best == "red"
    assert (summary["num_tracks"], summary["rows_without_key"]) == (3, 1)
    assert summary["top1"] == pytest.approx(2 / 3)
    assert summary["frame_top1"] == 0.4
    assert summary["risk_coverage"][0]["kept"] == 3
    (worst,) = summary["worst"]
    assert worst == {
        "track": "t2",
        "truth": "blue",
        "answer": "red",
        "best": "red",
        "confidence": pytest.approx(0.9),
        "frames": 1,
        "frames_used": 1,
        "first_row": 3,
    }
    strip = plot_worst_tracks(
        tracks, probs, samples, {n: i for i, n in enumerate(NAMES3)},
        tmp_path / "worst.png",
    )  # fmt: skip
    with Image.open(strip) as image:
        assert image.width >= 12 * 64  # room for a strip of 12 frames
        assert image.height > 64


def test_a_key_the_split_cannot_carry_is_refused_in_one_line(tmp_path: Path) -> None:
    samples = _rows(tmp_path, [("red", "t1"), ("blue", None)])
    coverage = check_track_key(samples, "track_id", "test", tmp_path, "jsonl")
    assert (coverage.rows, coverage.missing) == (2, 1)
    with pytest.raises(
        GroupKeyError, match=r"annotations\.jsonl: no row has metadata\.clip"
    ):
        check_track_key(samples, "clip", "test", tmp_path, "jsonl")
    with pytest.raises(GroupKeyError, match="class-folder layout has none"):
        check_track_key(samples, "track_id", "test", tmp_path, "folder")
