"""Near-duplicate search (core.near_duplicates) on tiles of real photographs."""

from __future__ import annotations

import io
import itertools

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

from classifier_training.core import near_duplicates as nd

Tile = npt.NDArray[np.uint8]
SIZE = 40


def photo(name: str) -> Image.Image:
    pixels = getattr(data, name)()
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


def cut(image: Image.Image, y: float, x: float, side: float = SIZE) -> Tile:
    box = (x, y, x + side, y + side)
    return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=box))


def grid(names: tuple[str, ...], step: int = 2 * SIZE) -> list[tuple[str, int, int]]:
    """Places of non-overlapping, textured tiles (``step`` apart) in the photos."""
    places = []
    for name in names:
        image = photo(name)
        for y in range(8, image.height - step, step):
            for x in range(8, image.width - step, step):
                if cut(image, y, x).mean(axis=2).std() >= 10:
                    places.append((name, y, x))
    return places


def jpeg(tile: Tile, quality: int = 70) -> Tile:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def changed(image: Image.Image, y: int, x: int, kind: int) -> Tile:
    """The tile at ``(y, x)`` cut again with one of seven small changes."""
    if kind == 0:  # shift by a few pixels
        return cut(image, y + 3, x - 2)
    if kind == 1:  # 5 % larger
        return cut(image, y - 1, x - 1, SIZE * 1.05)
    if kind == 2:
        return np.asarray(
            ImageEnhance.Brightness(Image.fromarray(cut(image, y, x))).enhance(1.1)
        )
    if kind == 3:
        return np.asarray(
            ImageEnhance.Contrast(Image.fromarray(cut(image, y, x))).enhance(0.9)
        )
    if kind == 4:
        return jpeg(cut(image, y, x))
    if kind == 5:
        return np.asarray(
            Image.fromarray(cut(image, y, x)).filter(ImageFilter.GaussianBlur(0.8))
        )
    brighter = ImageEnhance.Brightness(
        Image.fromarray(cut(image, y + 2, x + 2))
    ).enhance(0.92)
    return jpeg(np.asarray(brighter))


@pytest.fixture(scope="module")
def planted() -> tuple[list[Tile], list[Tile], set[tuple[int, int]]]:
    """Train tiles, test tiles (distinct ones and 14 changed copies), planted pairs."""
    places = grid(("astronaut", "coffee", "chelsea", "camera"))
    photos = {name: photo(name) for name, _, _ in places}
    train = [cut(photos[name], y, x) for name, y, x in places]
    # a tile below each train tile: no pixel in common with any of them
    test = [cut(photos[name], y + SIZE, x) for name, y, x in places[::3]]
    pairs = set()
    for kind, index in enumerate(range(2, len(places), len(places) // 14)):
        name, y, x = places[index]
        pairs.add((len(test), index))
        test.append(changed(photos[name], y, x, kind % 7))
    return train, test, pairs


def found(pairs: nd.Pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.query.tolist(), pairs.reference.tolist(), strict=True))


def test_planted_near_duplicates_are_found_and_distinct_tiles_left_alone(
    planted: tuple[list[Tile], list[Tile], set[tuple[int, int]]],
) -> None:
    train, test, pairs = planted
    assert len(pairs) == 14
    result = nd.find_pairs(nd.signatures(test), nd.signatures(train))
    # one planted copy is a single soft edge (too little detail to tell apart)
    assert found(result) <= pairs
    assert len(found(result)) >= 13
    assert np.all(np.diff(result.score) <= 0)  # best first
    assert np.all((result.score >= nd.DEFAULT_THRESHOLD) & (result.score <= 1.0 + 1e-6))


def test_distinct_real_tiles_have_no_near_duplicates() -> None:
    places = grid(("rocket", "coffee", "astronaut", "immunohistochemistry", "chelsea"))
    photos = {name: photo(name) for name, _, _ in places}
    tiles = [cut(photos[name], y, x) for name, y, x in places]
    assert len(tiles) > 100
    result = nd.find_pairs(nd.signatures(tiles))
    assert len(result) == 0, found(result)


def test_thresholds_behave_monotonically(
    planted: tuple[list[Tile], list[Tile], set[tuple[int, int]]],
) -> None:
    train, test, _ = planted
    a, b = nd.signatures(test), nd.signatures(train)
    loose = {"min_evidence": 0.0, "max_colour_shift": 2.0}
    previous = found(nd.find_pairs(a, b, 0.5, **loose))
    for threshold in (0.7, 0.85, 0.92, 0.97, 1.0):
        current = found(nd.find_pairs(a, b, threshold, **loose))
        assert current <= previous
        previous = current
    for option, values in (
        ("min_evidence", (0, 3, 5, 8)),
        ("max_colour_shift", (1, 0.1, 0.01, 0)),
    ):
        sets = [found(nd.find_pairs(a, b, 0.8, **{option: value})) for value in values]
        assert all(later <= earlier for earlier, later in itertools.pairwise(sets))
        assert len(sets[0]) > len(sets[-1])


def test_blockwise_search_equals_all_pairs(
    planted: tuple[list[Tile], list[Tile], set[tuple[int, int]]],
) -> None:
    train, test, _ = planted
    a, b = nd.signatures(test), nd.signatures(train)
    whole = nd.find_pairs(a, b, 0.85, exhaustive=True)
    assert len(whole) >= 13
    for result in (nd.find_pairs(a, b, 0.85, block=7), nd.find_pairs(a, b, 0.85)):
        np.testing.assert_array_equal(result.query, whole.query)
        np.testing.assert_array_equal(result.reference, whole.reference)
        np.testing.assert_allclose(result.score, whole.score, rtol=0, atol=1e-6)


def test_within_set_pairs_and_clusters() -> None:
    image = photo("astronaut")
    tiles = [
        cut(image, y, x) for y, x in ((300, 100), (60, 200), (250, 250), (150, 400))
    ]
    tiles += [changed(image, 250, 250, 0), changed(image, 250, 250, 4)]
    tiles += [changed(image, 300, 100, 2)]
    result = nd.find_pairs(nd.signatures(tiles), block=3)
    assert np.all(result.query < result.reference)
    groups = nd.clusters(result, len(tiles))
    assert [group.tolist() for group in groups] == [[2, 4, 5], [0, 6]]  # biggest first


def test_max_per_query_keeps_the_best_pairs() -> None:
    image = photo("coffee")
    original = cut(image, 200, 200)
    copies = [cut(image, 200 + shift, 200 + shift) for shift in (0, 1, 2, 3, 4)]
    everything = nd.find_pairs(nd.signatures([original]), nd.signatures(copies))
    capped = nd.find_pairs(
        nd.signatures([original]), nd.signatures(copies), max_per_query=2
    )
    assert len(everything) == 5
    assert capped.reference.tolist() == everything.reference[:2].tolist()
    assert capped.score.tolist() == everything.score[:2].tolist()


def test_signature_is_per_image_and_deterministic() -> None:
    image = photo("camera")
    grey = np.asarray(image.convert("L"))
    rgb = np.asarray(image)
    single = nd.signature(rgb)
    assert single.dtype == np.uint8
    assert single.shape == (nd.SIGNATURE_LENGTH,)
    np.testing.assert_array_equal(nd.signatures([rgb, cut(image, 0, 0)])[0], single)
    np.testing.assert_array_equal(nd.signature(grey), single)
    assert nd.signatures([]).shape == (0, nd.SIGNATURE_LENGTH)


def test_images_without_detail_match_nothing() -> None:
    blank = np.full((32, 32, 3), 120, dtype=np.uint8)
    nearly = blank.copy()
    nearly[16, 16] = 126
    # even exact copies: the pixel hash finds those, a correlation would be noise
    assert len(nd.find_pairs(nd.signatures([blank, nearly, blank, nearly]))) == 0


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
    ],
)
def test_signature_refuses_other_pixels(image: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="expected"):
        nd.signature(image)  # type: ignore[arg-type]


def test_find_pairs_refuses_bad_input() -> None:
    sigs = nd.signatures([np.asarray(photo("coffee"))])
    with pytest.raises(ValueError, match="references: expected uint8 signatures"):
        nd.find_pairs(sigs, sigs[:, :10])
    with pytest.raises(ValueError, match="threshold"):
        nd.find_pairs(sigs, sigs, threshold=0)
