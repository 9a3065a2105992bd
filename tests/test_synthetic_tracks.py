"""Track datasets of the synthetic generator (``classifier-synth --tracks``)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from classifier_training.core.groups import group_label, group_rows
from classifier_training.core.readers import read_split
from classifier_training.synthetic import SynthConfig, generate_dataset
from classifier_training.synthetic.cli import main
from classifier_training.synthetic.config import SynthConfigError, synth_config
from classifier_training.synthetic.tracks import TRACK_KEY, motion_blur

CLASSES = ("7", "23", "")
FRAMES = (3, 6)


def _config(out: Path, **overrides: Any) -> SynthConfig:
    values: dict[str, Any] = {
        "out_dir": out,
        "per_class": 4,
        "seed": 3,
        "image_size": 32,
        "classes": CLASSES,
        "workers": 1,
        "tracks": True,
        "track_frames_range": FRAMES,
    }
    values.update(overrides)
    return SynthConfig(**values)


def _rows(split_dir: Path) -> list[dict[str, Any]]:
    text = (split_dir / "annotations.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _tracks(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    tracks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        tracks[row["metadata"][TRACK_KEY]].append(row)
    return dict(tracks)


@pytest.fixture(scope="module")
def track_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_tracks") / "data"
    generate_dataset(_config(out))
    return out


def test_each_split_holds_its_own_tracks_of_several_frames(track_set: Path) -> None:
    seen: dict[str, set[str]] = {}
    for split, per_class in (("train", 4), ("valid", 2), ("test", 2)):
        tracks = _tracks(_rows(track_set / split))
        seen[split] = set(tracks)
        assert len(tracks) == per_class * len(CLASSES)
        for rows in tracks.values():
            assert FRAMES[0] <= len(rows) <= FRAMES[1]
            assert [r["metadata"]["frame"] for r in rows] == list(range(len(rows)))
    assert not seen["train"] & seen["valid"]
    assert not seen["train"] & seen["test"]
    assert not seen["valid"] & seen["test"]


def test_a_track_is_one_player_whose_number_is_sometimes_turned_away(
    track_set: Path,
) -> None:
    rows = _rows(track_set / "train")
    hidden = shown = 0
    for track, frames in _tracks(rows).items():
        number = track.split("-")[1]
        labels = {r["suffix"] for r in frames}
        if number == "empty":
            assert labels == {""}
            continue
        assert labels <= {number, ""}
        hidden += sum(r["suffix"] == "" for r in frames)
        shown_frames = [r["metadata"] for r in frames if r["suffix"]]
        shown += len(shown_frames)
        # The kit is the track's: one jersey colour, one font, one number colour.
        assert len({r["metadata"]["jersey_color"] for r in frames}) == 1
        for key in ("font", "number_color", "outline", "outline_color"):
            assert len({m[key] for m in shown_frames}) <= 1, (track, key)
        for row in frames:
            if row["suffix"] == "":
                assert row["metadata"]["font"] == "none"
    assert hidden > 0
    assert shown > hidden  # the default hides 30 % of the frames


def test_frames_vary_within_a_track(track_set: Path) -> None:
    tracks = _tracks(_rows(track_set / "train"))
    widths: set[int] = set()
    pixels = []
    for rows in tracks.values():
        for row in rows:
            with Image.open(track_set / "train" / row["image"]) as image:
                assert image.height == 32
                widths.add(image.width)
                pixels.append(np.asarray(image, dtype=np.float64).mean())
    assert len(widths) > 1
    assert len(set(np.round(pixels, 3))) == len(pixels)  # no two frames alike
    occluders = {r["metadata"]["occluder"] for rs in tracks.values() for r in rs}
    assert {"arm", "player"} & occluders


def test_the_group_key_reads_the_tracks_and_their_truth(track_set: Path) -> None:
    samples = read_split(track_set / "test")
    groups = group_rows(samples, TRACK_KEY)
    assert len(groups) == 2 * len(CLASSES)
    for track, indices in groups.items():
        truth = group_label(samples[i].label for i in indices)
        number = track.split("-")[1]
        assert truth in ("" if number == "empty" else number, "")


def test_tracks_are_deterministic_and_independent_of_workers_and_classes(
    tmp_path: Path,
) -> None:
    generate_dataset(_config(tmp_path / "a", per_class=2))
    generate_dataset(_config(tmp_path / "b", per_class=2, workers=2))
    generate_dataset(_config(tmp_path / "c", per_class=2, classes=("23",)))

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert a == b
    images = {k: v for k, v in c.items() if "/images/" in k}
    assert images
    assert all(a[name] == data for name, data in images.items())


def test_the_crop_dataset_is_described_as_before(tmp_path: Path) -> None:
    crops = SynthConfig(out_dir=tmp_path).fingerprint()
    assert not [key for key in crops if key.startswith("track")]
    tracks = _config(tmp_path).fingerprint()
    assert tracks["tracks"] is True
    assert tracks["track_frames_range"] == list(FRAMES)


def test_tracks_with_degrade_or_a_bad_frame_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SynthConfigError, match=r"^tracks and degrade cannot"):
        synth_config(out_dir=tmp_path, tracks=True, degrade=True)
    with pytest.raises(SynthConfigError, match=r"^track_frames_range: "):
        synth_config(out_dir=tmp_path, tracks=True, track_frames_range=(5, 2))


def test_cli_writes_tracks_with_the_frame_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = ["--out", str(out), "--tracks", "--frames", "2-3", "--per-class", "1"]
    argv += ["--classes", "5", "--image-size", "24", "--workers", "1", "-q"]
    assert main(argv) == 0
    tracks = _tracks(_rows(out / "train"))
    assert list(tracks) == ["train-5-0000"]
    assert 2 <= len(tracks["train-5-0000"]) <= 3
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "x"), "--tracks", "--frames", "two"])
    assert caught.value.code == 2
    assert "--frames" in capsys.readouterr().err


def test_motion_blur_spreads_a_point_along_its_direction() -> None:
    image = np.zeros((15, 15, 3), dtype=np.uint8)
    image[7, 7] = 255
    horizontal = np.asarray(motion_blur(Image.fromarray(image), 6.0, 0.0))[:, :, 0]
    assert horizontal[7].sum() == pytest.approx(horizontal.sum(), rel=0.05)
    assert (horizontal[7] > 0).sum() >= 5
    vertical = np.asarray(motion_blur(Image.fromarray(image), 6.0, np.pi / 2))
    assert (vertical[:, 7, 0] > 0).sum() >= 5
    assert motion_blur(Image.fromarray(image), 0.5, 0.0).tobytes() == image.tobytes()
