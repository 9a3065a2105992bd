"""Near-duplicate images: the same picture shifted, rescaled, re-lit or re-encoded.

Consecutive video frames of one player are near-copies: a few pixels of shift, a
slightly different scale, brightness or JPEG noise. Byte or pixel hashes miss
them; this module finds them. The method was chosen by measurement
(``benchmarks/near_duplicates.py``; the table is in ``benchmarks/README.md``).

**Signature** (:func:`signature`): the whole image squashed to a 24 x 24 grey
thumbnail, blurred a little (so half-pixel shifts and JPEG noise do not count),
plus the image's mean colour; ``uint8``, :data:`SIGNATURE_LENGTH` values. It
depends only on the decoded pixels, so it is computed once per image and can be
cached under the image's content hash together with :data:`SIGNATURE_VERSION`.

**Score** of an ordered pair (query, reference): the normalised cross-correlation
of the query's central 18 x 18 window with the reference's windows shifted by up
to :data:`MAX_SHIFT` thumbnail pixels (1/8 of the image side) in each
direction, best shift taken. Each window has its least-squares brightness plane
removed first, so a brightness or contrast change, or a smooth gradient shared
by two different images, does not raise the score. 1.0 is the same picture.

A pair is reported when three things hold: the score reaches the threshold
(:data:`DEFAULT_THRESHOLD`, an option); the mean colours agree (a red and a blue
crop with the same shapes are different pictures); and the *evidence*,
``atanh(score) * sqrt(detail)``, reaches :data:`DEFAULT_MIN_EVIDENCE`, where
``detail`` is the smaller effective number of independent details of the two
images (the participation ratio of their DCT energy). A single edge or blob has
little detail and correlates highly with many unrelated pictures, so it needs a
score closer to 1.

**Search** (:func:`find_pairs`) never loops over pairs in Python: a coarse stage
compares low-frequency DCT coefficients of the windows at 3 x 3 shifts by blocks
of matrix products and keeps the pairs above :data:`COARSE_THRESHOLD`; only those
get the exact score. Memory grows with the block size and the number of pairs
found, not with the product of the set sizes. :func:`clusters` groups a set's
pairs with itself into clusters.

Images without detail (a blank or almost uniform crop) match nothing here: their
correlation would be noise. Exact copies of those are found by the pixel hash.

Written on numpy and scipy rather than taken from a library: the perceptual
hashes of ``imagehash`` miss most shifted copies (see the benchmark), and
scikit-image's ``match_template`` scores one pair at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import ndimage
from scipy.fft import dct, dctn
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

#: Bump when :func:`signature` changes, so cached signatures are recomputed.
SIGNATURE_VERSION = 1
#: Side of the grey thumbnail every image is reduced to.
THUMBNAIL = 24
#: Gaussian blur of the thumbnail, in thumbnail pixels.
BLUR_SIGMA = 1.0
#: Largest shift searched, in thumbnail pixels (each direction).
MAX_SHIFT = 3
#: Side of the compared window.
WINDOW = THUMBNAIL - 2 * MAX_SHIFT
#: Values per signature: the thumbnail, then the mean red, green and blue.
SIGNATURE_LENGTH = THUMBNAIL * THUMBNAIL + 3
#: Score from which a pair is reported (the documented threshold option).
DEFAULT_THRESHOLD = 0.92
#: Largest difference of mean chromaticity (L1 of r, g, b shares) of a pair.
DEFAULT_MAX_COLOUR_SHIFT = 0.1
#: Lowest evidence, ``atanh(score) * sqrt(detail)``, of a reported pair.
DEFAULT_MIN_EVIDENCE = 4.0
#: Most pairs kept per query image (its best-scoring references).
DEFAULT_MAX_PER_QUERY = 64
#: Coarse-stage score below which a pair is not scored exactly.
COARSE_THRESHOLD = 0.75
#: Shifts of the coarse stage, per direction (the exact stage refines between).
COARSE_SHIFTS = (-2, 0, 2)
#: DCT frequencies per direction kept by the coarse stage.
COARSE_FREQUENCIES = 6
#: A window whose detail (grey-level standard deviation after the brightness
#: plane is removed) is below this has no near-duplicates.
MIN_DETAIL = 1.0

_MOST_SCORE = 1.0 - 1e-6  # keeps atanh finite
_PAIR_BATCH = 4096  # pairs scored together
_IMAGE_BATCH = 4096  # thumbnails turned into signatures together
_CANDIDATES = 8  # x max_per_query: most pairs of one query scored per block
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_SHIFTS = 2 * MAX_SHIFT + 1

SignatureArray = np.ndarray[Any, np.dtype[np.uint8]]
Floats = npt.NDArray[np.float32]
Indices = npt.NDArray[np.int64]


def _checked(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``image`` as ``H x W x 3`` ``uint8``; a grey ``H x W`` image is repeated."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(
            f"expected uint8 HxWx3 pixels, got {image.dtype} {image.shape}"
        )
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {image.shape}")
    return np.ascontiguousarray(image)


@cache
def _blur_matrix() -> Floats:
    """The Gaussian blur of one thumbnail axis as a matrix (scipy's, reflected)."""
    eye = np.eye(THUMBNAIL, dtype=np.float64)
    matrix: Floats = ndimage.gaussian_filter1d(eye, BLUR_SIGMA, axis=0).astype(
        np.float32
    )
    return matrix


def signature(image: npt.NDArray[np.uint8]) -> SignatureArray:
    """The near-duplicate signature of one decoded image.

    Args:
        image: ``uint8`` pixels, ``H x W x 3`` (RGB) or ``H x W`` (grey).

    Returns:
        :data:`SIGNATURE_LENGTH` ``uint8`` values: the blurred grey thumbnail, row
        by row, then the mean red, green and blue.

    Raises:
        ValueError: For another dtype or shape, or an empty image.
    """
    row: SignatureArray = signatures([image])[0]
    return row


def signatures(images: Iterable[npt.NDArray[np.uint8]]) -> SignatureArray:
    """:func:`signature` of each image, stacked: ``(N, SIGNATURE_LENGTH)``.

    Images are consumed in batches, so a generator of decoded images keeps the
    memory bounded by the result.

    Raises:
        ValueError: For an image of another dtype or shape, or an empty one.
    """
    parts = [np.zeros((0, SIGNATURE_LENGTH), dtype=np.uint8)]
    batch: list[npt.NDArray[np.uint8]] = []
    for image in images:
        small = Image.fromarray(_checked(image)).resize(
            (THUMBNAIL, THUMBNAIL), Image.Resampling.BILINEAR, reducing_gap=3.0
        )
        batch.append(np.asarray(small))
        if len(batch) == _IMAGE_BATCH:
            parts.append(_from_thumbnails(batch))
            batch = []
    if batch:
        parts.append(_from_thumbnails(batch))
    return np.concatenate(parts)


def _from_thumbnails(small: list[npt.NDArray[np.uint8]]) -> SignatureArray:
    """Signatures of RGB thumbnails: blurred grey, then mean colour."""
    rgb = np.stack(small).astype(np.float32)
    blur = _blur_matrix()
    grey = blur @ (rgb @ _LUMA) @ blur.T
    values = np.concatenate(
        [grey.reshape(len(rgb), -1), rgb.reshape(len(rgb), -1, 3).mean(axis=1)], axis=1
    )
    out: SignatureArray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class Pairs:
    """Near-duplicate pairs, best score first.

    Attributes:
        query: Index of each pair's query image.
        reference: Index of each pair's reference image (in the query set itself
            for a within-set search, where ``query < reference``).
        score: Each pair's score (see the module docstring), ``<= 1``.
    """

    query: Indices
    reference: Indices
    score: Floats

    def __len__(self) -> int:
        return len(self.score)


@cache
def _plane_basis() -> Floats:
    """Orthonormal basis (``WINDOW**2 x 3``) of brightness planes over a window."""
    rows, cols = np.mgrid[0:WINDOW, 0:WINDOW].astype(np.float64)
    ones = np.ones_like(rows)
    raw = np.stack([ones, rows - rows.mean(), cols - cols.mean()]).reshape(3, -1)
    basis, _ = np.linalg.qr(raw.T)
    return basis.astype(np.float32)


@cache
def _coarse_projection() -> Floats:
    """Plane removal then low-frequency 2-D DCT, as one ``WINDOW**2 x k`` matrix."""
    dct_rows = dct(np.eye(WINDOW), norm="ortho", axis=0)[:COARSE_FREQUENCIES]
    basis = np.kron(dct_rows, dct_rows)  # (k, WINDOW**2), orthonormal rows
    plane = _plane_basis().astype(np.float64)
    detrended = basis.T - plane @ (plane.T @ basis.T)
    return detrended.astype(np.float32)


def _thumbnails(sigs: SignatureArray) -> Floats:
    """Float thumbnails ``(N, THUMBNAIL, THUMBNAIL)`` of stacked signatures."""
    return (
        sigs[:, : THUMBNAIL * THUMBNAIL]
        .astype(np.float32)
        .reshape(-1, THUMBNAIL, THUMBNAIL)
    )


def _chromaticity(sigs: SignatureArray) -> Floats:
    """Mean r, g, b shares (brightness-free colour) of stacked signatures."""
    mean: Floats = sigs[:, THUMBNAIL * THUMBNAIL :].astype(np.float32) + 1.0
    shares: Floats = mean / mean.sum(axis=1, keepdims=True)
    return shares


def _unit_rows(matrix: Floats, floor: float) -> Floats:
    """Rows scaled to unit length; rows shorter than ``floor`` become zero."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.where(norms > floor, matrix / np.maximum(norms, floor), 0.0).astype(
        np.float32
    )


def _window(thumbs: Floats, dy: int = 0, dx: int = 0) -> Floats:
    """The window shifted by ``(dy, dx)`` from the centre, flattened."""
    top, left = MAX_SHIFT + dy, MAX_SHIFT + dx
    patch = thumbs[:, top : top + WINDOW, left : left + WINDOW]
    return patch.reshape(len(thumbs), -1)


_DETAIL_FLOOR = MIN_DETAIL * WINDOW  # residual norm of MIN_DETAIL std over a window


@dataclass(frozen=True)
class _Centres:
    """What the search needs of each image's centre window."""

    templates: Floats  # (N, WINDOW**2) plane removed, unit length (0: no detail)
    coarse: Floats  # (N, k) low-frequency DCT of the same, unit length
    detail: Floats  # (N,) effective number of independent details
    colour: Floats  # (N, 3) chromaticity

    def part(self, rows: slice) -> _Centres:
        return _Centres(
            self.templates[rows],
            self.coarse[rows],
            self.detail[rows],
            self.colour[rows],
        )


def _centres(sigs: SignatureArray) -> _Centres:
    centre = _window(_thumbnails(sigs))
    plane = _plane_basis()
    residual = centre - (centre @ plane) @ plane.T
    templates = _unit_rows(residual, _DETAIL_FLOOR)
    has_detail = np.linalg.norm(residual, axis=1, keepdims=True) > _DETAIL_FLOOR
    spectrum = dctn(templates.reshape(-1, WINDOW, WINDOW), axes=(1, 2), norm="ortho")
    # participation ratio of the (unit) energy over DCT frequencies: 1 for a
    # single frequency, WINDOW**2 for white noise; simple pictures (one edge,
    # one blob) score low and match unrelated pictures by chance
    fourth = (spectrum**4).sum(axis=(1, 2))
    detail = np.where(fourth > 0, 1.0 / np.maximum(fourth, 1e-12), 0.0)
    return _Centres(
        templates=templates,
        coarse=_unit_rows(centre @ _coarse_projection(), 1e-6) * has_detail,
        detail=detail.astype(np.float32),
        colour=_chromaticity(sigs),
    )


@dataclass(frozen=True)
class _References:
    """What the search needs of one block of reference images."""

    centres: _Centres
    thumbnails: Floats  # (n, THUMBNAIL, THUMBNAIL)
    inverse_norms: Floats  # (n, _SHIFTS, _SHIFTS) 1 / residual norm (0: no detail)
    coarse: Floats  # (len(COARSE_SHIFTS)**2, n, k) coarse vectors per shift


def _window_sums(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Sums over every shifted window, ``(n, _SHIFTS, _SHIFTS)`` (summed areas)."""
    table = np.zeros((len(values), THUMBNAIL + 1, THUMBNAIL + 1))
    table[:, 1:, 1:] = values.cumsum(axis=1).cumsum(axis=2)
    near, far = slice(0, _SHIFTS), slice(WINDOW, WINDOW + _SHIFTS)
    sums: npt.NDArray[np.float64] = (
        table[:, far, far]
        - table[:, near, far]
        - table[:, far, near]
        + table[:, near, near]
    )
    return sums


def _residual_norms(thumbs: Floats) -> npt.NDArray[np.float64]:
    """Length of every shifted window after its brightness plane is removed."""
    values = thumbs.astype(np.float64)
    rows = np.arange(THUMBNAIL, dtype=np.float64)[:, None]
    cols = np.arange(THUMBNAIL, dtype=np.float64)[None, :]
    total = _window_sums(values)
    squares = _window_sums(values * values)
    centres = np.arange(_SHIFTS, dtype=np.float64) + (WINDOW - 1) / 2
    # sums of (row - window centre) * value and (col - window centre) * value
    row_moment = _window_sums(values * rows) - centres[None, :, None] * total
    col_moment = _window_sums(values * cols) - centres[None, None, :] * total
    ramp = WINDOW * WINDOW * (WINDOW * WINDOW - 1) / 12  # sum of squared offsets
    squared = (
        squares - total**2 / WINDOW**2 - row_moment**2 / ramp - col_moment**2 / ramp
    )
    norms: npt.NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
    return norms


def _references(sigs: SignatureArray) -> _References:
    thumbs = _thumbnails(sigs)
    norms = _residual_norms(thumbs)
    inverse = np.where(norms > _DETAIL_FLOOR, 1.0 / np.maximum(norms, 1e-6), 0.0)
    projection = _coarse_projection()
    coarse = np.stack(
        [
            _unit_rows(_window(thumbs, dy, dx) @ projection, 1e-6)
            for dy in COARSE_SHIFTS
            for dx in COARSE_SHIFTS
        ]
    )
    return _References(
        centres=_centres(sigs),
        thumbnails=thumbs,
        inverse_norms=inverse.astype(np.float32),
        coarse=coarse,
    )


def _pairs_last(stack: Floats) -> Floats:
    """``(n, a, b)`` as a contiguous ``(a, b, n)`` array."""
    return np.ascontiguousarray(stack.transpose(1, 2, 0))


def _exact_scores(
    queries: _Centres, refs: _References, query: Indices, ref: Indices
) -> Floats:
    """Scores of the pairs ``(query[i], ref[i])`` (``ref`` indexes the block)."""

    def batch(start: int) -> Floats:
        q, r = query[start : start + _PAIR_BATCH], ref[start : start + _PAIR_BATCH]
        # pairs last: every product below runs along contiguous memory
        templates = _pairs_last(queries.templates[q].reshape(-1, WINDOW, WINDOW))
        thumbs = _pairs_last(refs.thumbnails[r])
        inverse = _pairs_last(refs.inverse_norms[r])
        best = np.zeros(len(q), dtype=np.float32)
        for dy in range(_SHIFTS):
            for dx in range(_SHIFTS):
                window = thumbs[dy : dy + WINDOW, dx : dx + WINDOW]
                dots = np.einsum("ijn,ijn->n", window, templates)
                np.maximum(best, dots * inverse[dy, dx], out=best)
        return best

    starts = range(0, len(query), _PAIR_BATCH)
    if len(starts) < 2:
        return batch(0) if len(query) else np.zeros(0, dtype=np.float32)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # einsum frees the GIL
        return np.concatenate(list(pool.map(batch, starts)))


def _coarse_candidates(
    queries: _Centres,
    refs: _References,
    query_offset: int,
    ref_offset: int,
    same_set: bool,
    exhaustive: bool,
) -> tuple[Indices, Indices, Floats]:
    """Pairs (query index, block reference index, coarse score) worth scoring."""
    count, width = refs.coarse.shape[1], len(queries.coarse)
    best = np.full((count, width), 1.0 if exhaustive else -1.0, dtype=np.float32)
    product = np.empty_like(best)
    for shifted in () if exhaustive else refs.coarse:  # max over the coarse shifts
        np.matmul(shifted, queries.coarse.T, out=product)
        np.maximum(best, product, out=best)
    if same_set:  # each unordered pair once, never an image with itself
        rows = np.arange(ref_offset, ref_offset + count)[:, None]
        cols = np.arange(query_offset, query_offset + width)[None, :]
        best[rows <= cols] = -1.0
    ref, query = np.nonzero(best >= COARSE_THRESHOLD)
    return query.astype(np.int64) + query_offset, ref.astype(np.int64), best[ref, query]


def _best_per_query(query: Indices, score: Floats, cap: int) -> Indices:
    """Positions of the ``cap`` best-scoring pairs of each query."""
    if len(query) == 0 or np.bincount(query).max() <= cap:
        return np.arange(len(query))
    order = np.lexsort((-score, query))
    ranked = query[order]
    rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked, side="left")
    return np.sort(order[rank < cap])


def _check(name: str, sigs: SignatureArray) -> None:
    if sigs.dtype != np.uint8 or sigs.ndim != 2 or sigs.shape[1] != SIGNATURE_LENGTH:
        raise ValueError(
            f"{name}: expected uint8 signatures of shape (N, {SIGNATURE_LENGTH}), "
            f"got {sigs.dtype} {sigs.shape}"
        )


def find_pairs(
    queries: SignatureArray,
    references: SignatureArray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    min_evidence: float = DEFAULT_MIN_EVIDENCE,
    max_colour_shift: float = DEFAULT_MAX_COLOUR_SHIFT,
    max_per_query: int = DEFAULT_MAX_PER_QUERY,
    block: int = 2048,
    exhaustive: bool = False,
) -> Pairs:
    """Near-duplicate pairs between two sets, or within one.

    A pair is reported when its score is at least ``threshold``, its evidence
    (``atanh(score) * sqrt(detail)``, ``detail`` the smaller of the two images'
    effective number of independent details) at least ``min_evidence``, and its
    mean colours agree within ``max_colour_shift``.

    Args:
        queries: Signatures ``(N, SIGNATURE_LENGTH)`` (e.g. the test split).
        references: Signatures to compare against (e.g. train); ``None`` searches
            ``queries`` against itself (each pair once, ``query < reference``).
        threshold: Lowest score reported; higher finds fewer, closer pairs.
        min_evidence: Lowest evidence reported; pictures with little detail
            (one edge, one blob) need a higher score to count.
        max_colour_shift: Largest mean-chromaticity difference (L1) of a pair.
        max_per_query: Most pairs kept per query image, its best-scoring ones
            (where more than 8 times as many look alike at the coarse stage
            within one block, only the closest of those are scored).
        block: Images per block on each side; the working memory is about
            ``block**2 * 8`` bytes plus 40 kB per image of a block (about 120 MB
            at the default), besides the signatures and the pairs found.
        exhaustive: Score every pair exactly, without the coarse stage (slow;
            for checking the coarse stage on small sets).

    Returns:
        The pairs, best score first.

    Raises:
        ValueError: For signatures of the wrong shape or type, or a threshold
            outside ``(0, 1]``.
    """
    same_set = references is None
    refs_all = queries if references is None else references
    _check("queries", queries)
    _check("references", refs_all)
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    centres = _centres(queries)
    found: list[tuple[Indices, Indices, Floats]] = []
    for ref_start in range(0, len(refs_all), block):
        refs = _references(refs_all[ref_start : ref_start + block])
        for query_start in range(0, len(queries), block):
            chunk = centres.part(slice(query_start, query_start + block))
            query, ref, coarse = _coarse_candidates(
                chunk, refs, query_start, ref_start, same_set, exhaustive
            )
            if not exhaustive:  # bounds the exact work where many pictures look alike
                best = _best_per_query(query, coarse, _CANDIDATES * max_per_query)
                query, ref = query[best], ref[best]
            colour = refs.centres.colour[ref]
            close = (
                np.abs(centres.colour[query] - colour).sum(axis=1) <= max_colour_shift
            )
            query, ref = query[close], ref[close]
            score = _exact_scores(centres, refs, query, ref)
            detail = np.minimum(centres.detail[query], refs.centres.detail[ref])
            evidence = np.arctanh(np.minimum(score, _MOST_SCORE)) * np.sqrt(detail)
            keep = (score >= threshold) & (evidence >= min_evidence)
            found.append((query[keep], ref[keep] + ref_start, score[keep]))
    query = np.concatenate([np.zeros(0, np.int64), *(f[0] for f in found)])
    ref = np.concatenate([np.zeros(0, np.int64), *(f[1] for f in found)])
    score = np.concatenate([np.zeros(0, np.float32), *(f[2] for f in found)])
    keep = _best_per_query(query, score, max_per_query)
    query, ref, score = query[keep], ref[keep], score[keep]
    order = np.lexsort((ref, query, -score))
    return Pairs(query[order], ref[order], score[order].astype(np.float32))


def clusters(pairs: Pairs, count: int) -> list[Indices]:
    """Groups of images linked by near-duplicate pairs (within one set).

    Args:
        pairs: A within-set search's result (:func:`find_pairs` without
            ``references``).
        count: Number of images in the set.

    Returns:
        Each group of two or more images (sorted indices), largest first.
    """
    graph = coo_array(
        (np.ones(len(pairs), dtype=np.int8), (pairs.query, pairs.reference)),
        shape=(count, count),
    )
    _, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")  # members of a label stay sorted
    groups = np.split(order, np.cumsum(np.bincount(labels))[:-1])
    groups = [group for group in groups if len(group) > 1]
    groups.sort(key=lambda members: (-len(members), int(members[0])))
    return groups
