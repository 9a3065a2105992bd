"""Tests for the built-in synthetic jersey-number dataset generator."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import PIL
import pytest
from PIL import Image, features

import classifier_training.synthetic as synthetic_pkg
from classifier_training.core.errors import ClassifierError
from classifier_training.synthetic import (
    DEFAULT_CLASSES,
    SPLITS,
    SynthConfig,
    SynthError,
    dataset_is_complete,
    generate_dataset,
    parse_class_spec,
    render_sample,
)
from classifier_training.synthetic.cli import build_parser, main
from classifier_training.synthetic.colors import HELD_OUT_PALETTE, PALETTE
from classifier_training.synthetic.config import (
    DEGRADED_FONTS,
    DEGRADED_SPLIT,
    SynthConfigError,
    synth_config,
)
from classifier_training.synthetic.degraded import degraded_config, degraded_fonts
from classifier_training.synthetic.geometry import (
    Pose,
    number_matrix,
    perspective_coeffs,
    place_in_box,
)

CLASSES = ("3", "7", "23", "")
PER_CLASS = 4
EVAL_PER_CLASS = 2  # max(2, round(0.2 * 4))
IMAGE_SIZE = 32


def _config(out_dir: Path, **overrides: Any) -> SynthConfig:
    params: dict[str, Any] = {
        "out_dir": out_dir,
        "per_class": PER_CLASS,
        "seed": 7,
        "image_size": IMAGE_SIZE,
        "classes": CLASSES,
        "workers": 1,
    }
    params.update(overrides)
    return SynthConfig(**params)


def _read_rows(split_dir: Path) -> list[dict[str, Any]]:
    lines = (split_dir / "annotations.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One small dataset shared by the read-only tests."""
    out = tmp_path_factory.mktemp("synth") / "data"
    counts = generate_dataset(_config(out))
    return out, counts


# ----------------------------------------------------------------- class specs


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0-3", ("0", "1", "2", "3")),
        ("7,23", ("7", "23")),
        ("23, 7,7", ("7", "23")),
        ("empty", ("",)),
        ("7,23,empty", ("7", "23", "")),
        (",5", ("5", "")),
        ("0-2,", ("0", "1", "2", "")),
        ("99,EMPTY,0", ("0", "99", "")),
    ],
)
def test_parse_class_spec(spec: str, expected: tuple[str, ...]) -> None:
    assert parse_class_spec(spec) == expected


def test_parse_class_spec_all_and_default() -> None:
    assert parse_class_spec("all") == DEFAULT_CLASSES
    assert len(DEFAULT_CLASSES) == 101
    assert DEFAULT_CLASSES[0] == "0"
    assert DEFAULT_CLASSES[-2:] == ("99", "")


@pytest.mark.parametrize("spec", ["", "  ", "abc", "5-2", "100", "0-100", "-3", "1.5"])
def test_parse_class_spec_rejects_invalid(spec: str) -> None:
    with pytest.raises(ValueError, match="class spec"):
        parse_class_spec(spec)


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="per_class"):
        _config(tmp_path, per_class=0)
    with pytest.raises(ValueError, match="invalid class label"):
        _config(tmp_path, classes=("07",))
    with pytest.raises(ValueError, match="duplicate"):
        _config(tmp_path, classes=("1", "1"))
    cfg = _config(tmp_path, classes=("", "10", "2"))
    assert cfg.classes == ("2", "10", "")
    assert cfg.per_class_counts() == {"train": 4, "valid": 2, "test": 2}
    assert _config(tmp_path, per_class=60).eval_per_class == 12


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 8),
        ("seed", -1),
        ("workers", 0),
        ("eval_fraction", 1.5),
        ("fonts", ()),
        ("aspect_range", (1.5, 1.0)),  # lo > hi
        ("gain_range", (0.5, 3.5)),  # above its bound
        ("jpeg_quality_range", (0, 90)),
        ("outline_prob", -0.1),
        ("max_rotation_deg", 50.0),
        ("min_contrast", 0.5),
    ],
)
def test_out_of_range_settings_are_one_line_naming_the_field(
    tmp_path: Path, field: str, value: object
) -> None:
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})
    with pytest.raises(SynthConfigError) as caught:
        synth_config(out_dir=tmp_path, **{field: value})
    message = str(caught.value)
    assert message.startswith(f"{field}: ")
    assert "\n" not in message
    assert repr(value) in message


def test_settings_are_frozen_and_unknown_ones_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(SynthConfigError, match="per_clas: Extra inputs"):
        synth_config(out_dir=tmp_path, per_clas=3)


def test_cli_reports_a_bad_setting_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path / "x"), "--image-size", "8", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("classifier-synth: error: image_size: ")
    assert "16" in err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- dataset files


def test_layout_and_jsonl_schema(dataset: tuple[Path, dict[str, int]]) -> None:
    out, _ = dataset
    assert (out / ".complete").is_file()
    stored = json.loads((out / "synth_config.json").read_text(encoding="utf-8"))
    assert stored["seed"] == 7
    assert stored["classes"] == list(CLASSES)
    assert "out_dir" not in stored
    assert "workers" not in stored
    for split in SPLITS:
        split_dir = out / split
        rows = _read_rows(split_dir)
        images = {p.name for p in (split_dir / "images").iterdir()}
        assert sorted(images) == sorted(r["image"].split("/", 1)[1] for r in rows)
        for row in rows:
            assert list(row) == ["image", "prefix", "suffix", "metadata"]
            assert row["image"].startswith("images/")
            assert row["image"].endswith(".jpg")
            assert row["prefix"] == "jersey number"
            assert row["suffix"] in CLASSES
            meta = row["metadata"]
            for key in ("font", "jersey_color", "number_color", "outline_color"):
                assert isinstance(meta[key], str)
            assert isinstance(meta["outline"], bool)
        # rows are ordered by class (numbers ascending, empty last), then index
        n = PER_CLASS if split == "train" else EVAL_PER_CLASS
        assert [r["image"] for r in rows] == [
            f"images/{label or 'empty'}_{i:05d}.jpg"
            for label in CLASSES
            for i in range(n)
        ]
        assert [r["suffix"] for r in rows] == [
            label for label in CLASSES for _ in range(n)
        ]


def test_row_counts_per_split(dataset: tuple[Path, dict[str, int]]) -> None:
    out, counts = dataset
    n = len(CLASSES)
    assert counts == {"train": PER_CLASS * n, "valid": 2 * n, "test": 2 * n}
    for split in SPLITS:
        rows = _read_rows(out / split)
        assert len(rows) == counts[split]
        per_label = dict.fromkeys(CLASSES, 0)
        for row in rows:
            per_label[row["suffix"]] += 1
        expected = PER_CLASS if split == "train" else EVAL_PER_CLASS
        assert set(per_label.values()) == {expected}
    marker = json.loads((out / ".complete").read_text(encoding="utf-8"))
    assert marker["counts"] == counts


def test_empty_label_rows(dataset: tuple[Path, dict[str, int]]) -> None:
    out, _ = dataset
    rows = [r for r in _read_rows(out / "train") if r["suffix"] == ""]
    assert len(rows) == PER_CLASS
    assert [r["image"] for r in rows] == [
        f"images/empty_{i:05d}.jpg" for i in range(PER_CLASS)
    ]
    for row in rows:
        assert row["metadata"]["number_color"] == "none"
        assert row["metadata"]["font"] == "none"
    numbered = [r for r in _read_rows(out / "train") if r["suffix"] == "23"]
    assert numbered[0]["image"] == "images/23_00000.jpg"
    assert all(r["metadata"]["font"] != "none" for r in numbered)


def test_images_decode_with_expected_size(
    dataset: tuple[Path, dict[str, int]],
) -> None:
    out, _ = dataset
    paths = sorted(out.glob("*/images/*.jpg"))
    assert len(paths) == sum(dataset[1].values())
    widths = set()
    for path in paths:
        with Image.open(path) as img:
            assert img.format == "JPEG"
            assert img.mode == "RGB"
            assert img.height == IMAGE_SIZE
            assert round(0.75 * IMAGE_SIZE) <= img.width <= IMAGE_SIZE
            widths.add(img.width)
            img.load()
    assert len(widths) > 1  # aspect ratio varies


def test_render_sample_in_memory() -> None:
    cfg = SynthConfig(out_dir=Path("unused"), image_size=48)
    img, meta = render_sample(cfg, "42", split="valid", index=3)
    again, meta_again = render_sample(cfg, "42", split="valid", index=3)
    assert img.height == 48
    assert img.tobytes() == again.tobytes()
    assert meta == meta_again
    assert meta["font"] != "none"
    with pytest.raises(ValueError, match="split"):
        render_sample(cfg, "42", split="bogus")


# ---------------------------------------------------------------- determinism


def test_byte_identical_across_runs_and_workers(tmp_path: Path) -> None:
    first = generate_dataset(_config(tmp_path / "a", workers=1))
    second = generate_dataset(_config(tmp_path / "b", workers=2))
    third = generate_dataset(_config(tmp_path / "c", workers=1))
    assert first == second == third
    files_a = _file_bytes(tmp_path / "a")
    assert files_a == _file_bytes(tmp_path / "b")
    assert files_a == _file_bytes(tmp_path / "c")

    generate_dataset(_config(tmp_path / "d", seed=8))
    files_d = _file_bytes(tmp_path / "d")
    assert files_d.keys() == files_a.keys()
    assert files_d["train/images/7_00000.jpg"] != files_a["train/images/7_00000.jpg"]


def _rendering_stack() -> str:
    """Versions of everything that shapes the bytes besides our own code."""
    return (
        f"numpy={np.__version__} pillow={PIL.__version__} "
        f"libjpeg={features.version('jpg')} freetype={features.version('freetype2')} "
        f"matplotlib={matplotlib.__version__}"
    )


# Digest of the tiny dataset below, per library stack. Recorded with the code
# before synthetic/ was split into modules, so the refactor provably changed no
# byte. A renderer change that alters images must bump GENERATOR_VERSION and
# re-record; a new library stack may add its own line.
_GOLDEN_DIGESTS = {
    "numpy=1.26.4 pillow=13.0.0 libjpeg=6.2 freetype=2.14.3 matplotlib=3.11.2": (
        "9f808a27575b8ec669580ce8affad5fe9c897a69e94324c3e217153a514a9625"
    ),
}


def test_pinned_digest_of_tiny_dataset(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_dataset(
        _config(out, per_class=2, seed=5, classes=("7", "23", ""), workers=1)
    )
    digest = hashlib.sha256()
    for name, data in _file_bytes(out).items():
        digest.update(Path(name).as_posix().encode() + b"\0" + data)
    stack = _rendering_stack()
    if stack not in _GOLDEN_DIGESTS:
        pytest.skip(f"no digest recorded for {stack}; got {digest.hexdigest()}")
    assert digest.hexdigest() == _GOLDEN_DIGESTS[stack]


def test_class_subset_renders_same_images(
    tmp_path: Path, dataset: tuple[Path, dict[str, int]]
) -> None:
    full, _ = dataset
    generate_dataset(_config(tmp_path / "sub", classes=parse_class_spec("23,empty")))
    sub_files = _file_bytes(tmp_path / "sub" / "train" / "images")
    assert sorted(sub_files) == sorted(
        [f"23_{i:05d}.jpg" for i in range(PER_CLASS)]
        + [f"empty_{i:05d}.jpg" for i in range(PER_CLASS)]
    )
    for name, data in sub_files.items():
        assert (full / "train" / "images" / name).read_bytes() == data


# ------------------------------------------------------- output-dir handling


def test_second_run_is_noop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    argv = ["--out", str(out), "--per-class", "3", "--seed", "1"]
    argv += ["--image-size", "32", "--classes", "5,empty", "--workers", "1"]
    assert main(argv) == 0
    image = out / "train" / "images" / "5_00000.jpg"
    before = image.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "already exists" in capsys.readouterr().out
    assert image.stat().st_mtime_ns == before
    cfg = SynthConfig(
        out_dir=out, per_class=3, seed=1, image_size=32, classes=("5", "")
    )
    assert dataset_is_complete(cfg)
    assert generate_dataset(cfg) == {"train": 6, "valid": 4, "test": 4}


def test_refuses_non_empty_dir_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(SynthError, match="--overwrite"):
        generate_dataset(_config(out))
    argv = ["--out", str(out), "--per-class", "3", "--classes", "1", "--workers", "1"]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--quiet"]) == 0
    assert (out / ".complete").is_file()
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_interrupted_or_changed_dataset_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "data"
    generate_dataset(_config(out, classes=("1",)))
    with pytest.raises(SynthError, match="different configuration"):
        generate_dataset(_config(out, classes=("1",), seed=99))

    (out / ".complete").unlink()  # simulate a run killed before the marker
    assert not dataset_is_complete(_config(out, classes=("1",)))
    with pytest.raises(SynthError, match="no completion marker"):
        generate_dataset(_config(out, classes=("1",)))

    stale = out / "train" / "images" / "stale.jpg"
    stale.write_bytes(b"junk")
    counts = generate_dataset(_config(out, classes=("2",), overwrite=True))
    assert counts == {"train": PER_CLASS, "valid": 2, "test": 2}
    assert not stale.exists()
    assert not (out / "train" / "images" / "1_00000.jpg").exists()
    assert dataset_is_complete(_config(out, classes=("2",)))


def test_overwrite_removes_stale_temporary_files(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    stale = [
        out / ".synth_config.k3j2.tmp.json",  # core.io temp names
        out / "..complete.x9q1.tmp",
        out / "synth_config.json.tmp",  # names used by earlier releases
        out / ".complete.tmp",
    ]
    for path in stale:
        path.write_text("{", encoding="utf-8")
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    generate_dataset(_config(out, classes=("1",), overwrite=True))
    assert not [p for p in stale if p.exists()]
    assert (out / "notes.txt").is_file()
    assert dataset_is_complete(_config(out, classes=("1",)))


def test_synth_error_is_a_project_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ClassifierError, match="not a directory"):
        generate_dataset(_config(tmp_path / "file"))


# ------------------------------------------------------------------- geometry


@pytest.mark.parametrize("seed", range(5))
def test_placed_number_stays_inside_its_box(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pose = Pose(
        condense=rng.uniform(0.5, 1.2),
        angle_rad=rng.uniform(-0.6, 0.6),
        tilt_x=rng.uniform(-0.3, 0.3),
        tilt_y=rng.uniform(-0.15, 0.15),
    )
    width, height = 80.0, 120.0  # larger than the box: must be shrunk
    box = (10.0, 5.0, 60.0, 70.0)
    m = place_in_box(rng, number_matrix(pose, width, height), width, height, box)
    # PIL's coefficients map output pixels back: invert them by hand to check.
    a, b, c, d, e, f, g, h = perspective_coeffs(m)
    for x, y in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height)):
        z = m[6] * x + m[7] * y + m[8]
        u, v = (m[0] * x + m[1] * y + m[2]) / z, (m[3] * x + m[4] * y + m[5]) / z
        assert box[0] - 1e-6 <= u <= box[2] + 1e-6
        assert box[1] - 1e-6 <= v <= box[3] + 1e-6
        back = g * u + h * v + 1.0
        assert (a * u + b * v + c) / back == pytest.approx(x, abs=1e-6)
        assert (d * u + e * v + f) / back == pytest.approx(y, abs=1e-6)


# ------------------------------------------------------------------------ CLI


def test_cli_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    text = capsys.readouterr().out
    options = ("--out", "--per-class", "--seed", "--image-size", "--classes")
    for option in (*options, "--degrade"):
        assert option in text
    assert "empty" in text


def test_cli_defaults_come_from_config() -> None:
    args = build_parser().parse_args(["--out", "x"])
    config = SynthConfig(out_dir=Path("x"))
    flags = ("per_class", "seed", "image_size", "classes", "workers", "overwrite")
    for name in (*flags, "degrade"):
        assert getattr(args, name) == getattr(config, name), name
    names = set(SynthConfig.model_fields)
    assert set(vars(args)) - {"out", "quiet"} <= names
    text = " ".join(build_parser().format_help().split())
    lo, hi = config.aspect_range
    assert f"between {lo} and {hi} times" in text
    assert f"round({config.eval_fraction} * N)" in text


def test_cli_rejects_bad_class_spec(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--out", "unused", "--classes", "5-2"])
    assert excinfo.value.code == 2
    assert "class spec" in capsys.readouterr().err


def test_python_dash_m_help() -> None:
    src = str(Path(synthetic_pkg.__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "classifier_training.synthetic", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "classifier-synth" in result.stdout


# ------------------------------------------------------------ degraded split


@pytest.fixture(scope="module")
def degraded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The ``dataset`` fixture's configuration with ``degrade=True``."""
    out = tmp_path_factory.mktemp("synth_degraded") / "data"
    counts = generate_dataset(_config(out, degrade=True))
    return out, counts


def _highfreq_energy(path: Path) -> float:
    with Image.open(path) as img:
        a = np.asarray(img.convert("L"), dtype=np.float64)
    lap = 4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]
    return float((lap**2).mean())


def _mean_quant_step(path: Path) -> float:
    """Mean luminance quantisation step: grows as the JPEG quality drops."""
    with Image.open(path) as img:
        tables = img.quantization  # type: ignore[attr-defined]
    return float(np.mean(tables[0]))


def test_degraded_split_layout_and_counts(
    degraded: tuple[Path, dict[str, int]],
) -> None:
    out, counts = degraded
    n = len(CLASSES)
    assert counts == {
        "train": PER_CLASS * n,
        "valid": 2 * n,
        "test": 2 * n,
        DEGRADED_SPLIT: EVAL_PER_CLASS * n,
    }
    marker = json.loads((out / ".complete").read_text(encoding="utf-8"))
    assert marker["counts"] == counts
    rows = _read_rows(out / DEGRADED_SPLIT)
    test_rows = _read_rows(out / "test")
    # Same files, labels and order as test/: a drop-in second test split.
    assert [(r["image"], r["suffix"]) for r in rows] == [
        (r["image"], r["suffix"]) for r in test_rows
    ]
    images = sorted(p.name for p in (out / DEGRADED_SPLIT / "images").iterdir())
    assert images == sorted(r["image"].split("/", 1)[1] for r in rows)
    for path in (out / DEGRADED_SPLIT / "images").iterdir():
        with Image.open(path) as img:
            assert img.height == IMAGE_SIZE
            assert img.mode == "RGB"
    stored = json.loads((out / "synth_config.json").read_text(encoding="utf-8"))
    assert stored["degrade"] is True
    assert dataset_is_complete(_config(out, degrade=True))
    assert not dataset_is_complete(_config(out))


def test_degraded_split_uses_unseen_fonts_and_colours(
    degraded: tuple[Path, dict[str, int]],
) -> None:
    out, _ = degraded
    train_meta = [r["metadata"] for r in _read_rows(out / "train")]
    meta = [r["metadata"] for r in _read_rows(out / DEGRADED_SPLIT)]
    fonts = {m["font"] for m in meta} - {"none"}
    assert fonts
    assert fonts <= set(DEGRADED_FONTS)
    assert not fonts & {m["font"] for m in train_meta}
    colours = {m[k] for m in meta for k in ("jersey_color", "number_color")}
    colours -= {"none"}
    assert colours <= set(HELD_OUT_PALETTE)
    assert {m["jersey_color"] for m in train_meta} <= set(PALETTE)


def test_held_out_colours_never_overlap_jittered_train_colours() -> None:
    jitter = SynthConfig(out_dir=Path(".")).color_jitter
    assert not set(HELD_OUT_PALETTE) & set(PALETTE)
    for name, held in HELD_OUT_PALETTE.items():
        for other, train in PALETTE.items():
            gap = max(abs(a - b) for a, b in zip(held, train, strict=True))
            assert gap > 2 * jitter, (name, other)


def test_degraded_images_are_visibly_degraded(
    degraded: tuple[Path, dict[str, int]],
) -> None:
    out, _ = degraded
    test_paths = sorted((out / "test" / "images").glob("*.jpg"))
    bad_paths = sorted((out / DEGRADED_SPLIT / "images").glob("*.jpg"))
    assert len(test_paths) == len(bad_paths) > 0
    # Low resolution and blur remove detail despite the added noise ...
    test_energy = np.mean([_highfreq_energy(p) for p in test_paths])
    bad_energy = np.mean([_highfreq_energy(p) for p in bad_paths])
    assert bad_energy < 0.5 * test_energy
    # ... and every image is saved at a lower JPEG quality than any test image.
    assert min(map(_mean_quant_step, bad_paths)) > max(
        map(_mean_quant_step, test_paths)
    )


def test_degrade_leaves_other_splits_byte_identical(
    dataset: tuple[Path, dict[str, int]], degraded: tuple[Path, dict[str, int]]
) -> None:
    plain, _ = dataset
    out, _ = degraded
    for split in SPLITS:
        assert _file_bytes(out / split) == _file_bytes(plain / split), split
    assert not (plain / DEGRADED_SPLIT).exists()
    plain_cfg = json.loads((plain / "synth_config.json").read_text(encoding="utf-8"))
    assert not [key for key in plain_cfg if key.startswith("degrade")]


def test_degraded_split_byte_identical_per_seed(
    tmp_path: Path, degraded: tuple[Path, dict[str, int]]
) -> None:
    out, _ = degraded
    again = tmp_path / "again"
    generate_dataset(_config(again, degrade=True, workers=2))
    assert _file_bytes(again) == _file_bytes(out)
    other = tmp_path / "other"
    generate_dataset(_config(other, degrade=True, seed=8, classes=("7",)))
    name = f"{DEGRADED_SPLIT}/images/7_00000.jpg"
    assert (other / name).read_bytes() != (out / name).read_bytes()


def test_overwrite_without_degrade_removes_degraded_split(tmp_path: Path) -> None:
    out = tmp_path / "data"
    argv = ["--out", str(out), "--per-class", "2", "--classes", "5", "--workers", "1"]
    assert main([*argv, "--degrade", "--quiet"]) == 0
    assert (out / DEGRADED_SPLIT / "annotations.jsonl").is_file()
    assert main([*argv, "--quiet"]) == 2  # a different configuration
    assert main([*argv, "--overwrite", "--quiet"]) == 0
    assert not (out / DEGRADED_SPLIT).exists()
    assert dataset_is_complete(SynthConfig(out_dir=out, per_class=2, classes=("5",)))


def test_degraded_falls_back_to_condensed_train_fonts(tmp_path: Path) -> None:
    cfg = _config(tmp_path, fonts=("DejaVuSans-Bold", *DEGRADED_FONTS), degrade=True)
    assert set(degraded_fonts(cfg)) == set(cfg.fonts)
    fallback = degraded_config(cfg, unseen_fonts=False)
    assert fallback.condense_range[1] < cfg.condense_range[0]
    assert degraded_config(cfg, unseen_fonts=True).condense_range == cfg.condense_range
    img, meta = render_sample(cfg, "42", split=DEGRADED_SPLIT)
    assert img.height == IMAGE_SIZE
    assert meta["font"] in cfg.fonts
