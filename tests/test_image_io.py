"""``image_io``: every common file mode decodes to the same 8-bit RGB result."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier_training.core.image_io import (
    MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    load_image,
    to_rgb,
)


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG declaring ``width x height`` with no pixel data (a 'bomb')."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_rgb_jpeg_and_png_round_trip(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.mode == "RGB"
    assert image.size == (9, 6)
    np.testing.assert_array_equal(np.asarray(image), pixels)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 200, (200, 200, 200)),
        ("LA", (90, 255), (90, 90, 90)),
        ("RGBA", (10, 20, 30, 128), (10, 20, 30)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("1", 1, (255, 255, 255)),
    ],
)
def test_modes_convert_to_rgb(
    tmp_path: Path, mode: str, value: object, expected: tuple[int, int, int]
) -> None:
    suffix = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"img{suffix}"
    Image.new(mode, (5, 4), value).save(path, quality=100)  # type: ignore[arg-type]
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (5, 4)
    got = image.getpixel((2, 2))
    assert isinstance(got, tuple)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 2


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 250, 100, 20] + [0] * 762)
    palette.save(tmp_path / "p.png")
    palette.save(tmp_path / "pt.png", transparency=0)
    for name in ("p.png", "pt.png"):
        image = load_image(tmp_path / name)
        assert image.mode == "RGB"
        assert image.getpixel((0, 0)) == (250, 100, 20)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    image = load_image(tmp_path / "g16.png")
    row = np.asarray(image)[0, :, 0]
    np.testing.assert_array_equal(row, [0, 128, 255, 4])


def test_float_images_in_unit_range(tmp_path: Path) -> None:
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    row = np.asarray(load_image(tmp_path / "f.tif"))[0, :, 0]
    np.testing.assert_array_equal(row, [0, 128, 255])
    assert to_rgb(Image.fromarray(values)).mode == "RGB"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # 4 wide x 2 high, left half red, right half blue; orientation 6 means the
    # viewer must rotate 90 degrees clockwise -> 2 wide x 4 high, red on top.
    pixels = np.zeros((2, 4, 3), dtype=np.uint8)
    pixels[:, :2] = (255, 0, 0)
    pixels[:, 2:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "rot.png", exif=exif.tobytes())
    image = load_image(tmp_path / "rot.png")
    assert image.size == (2, 4)
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert image.getpixel((0, 3)) == (0, 0, 255)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # Just above our limit (Pillow alone would only warn) and far above it
    # (Pillow raises): both are refused with the declared size named.
    side = int(MAX_IMAGE_PIXELS**0.5) + 10
    for width, height in ((side, side), (100_000, 100_000)):
        path = write_png_header(tmp_path / f"bomb{width}.png", width, height)
        with pytest.raises(ImageTooLargeError, match=r"decompression bomb.*refused"):
            load_image(path)


def test_truncated_file_raises(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated"):
        load_image(tmp_path / "t.jpg")
