"""Tests for emviewer.core.tiling: tile grid, padding, blending window and stitching."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.tiling import (
    Stitcher,
    blend_window,
    pad_to_at_least,
    predict_tiled,
    tile_grid,
    tile_starts,
)

RNG = np.random.default_rng(1)


def identity(batch):
    """A stand-in model that "predicts" its input's centre channel."""
    return batch[..., batch.shape[-1] // 2 : batch.shape[-1] // 2 + 1]


def test_tile_starts_examples():
    assert tile_starts(64, 64, 0) == [0]
    assert tile_starts(100, 32, 0) == [0, 32, 64, 68]
    assert tile_starts(100, 32, 8) == [0, 24, 48, 68]
    assert tile_starts(56, 32, 8) == [0, 24]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_tile_starts_cover_the_axis_inside_it_with_the_overlap(data):
    tile = data.draw(st.integers(1, 40), label="tile")
    overlap = data.draw(st.integers(0, tile - 1), label="overlap")
    length = data.draw(st.integers(tile, 300), label="length")
    starts = tile_starts(length, tile, overlap)
    covered = np.zeros(length, dtype=int)
    for start in starts:
        assert 0 <= start <= length - tile
        covered[start : start + tile] += 1
    assert covered.min() >= 1
    assert starts == sorted(set(starts))
    for previous, current in zip(starts, starts[1:]):
        assert previous + tile - current >= overlap  # neighbours overlap enough
        assert current - previous <= tile - overlap  # and do not overlap needlessly much


@pytest.mark.parametrize("shape", [(64, 64), (100, 37), (37, 100), (129, 65)])
@pytest.mark.parametrize("tile, overlap", [(32, 0), (32, 8), ((32, 16), (4, 2))])
def test_tile_grid_covers_every_pixel_inside_the_image(shape, tile, overlap):
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    count = np.zeros(shape, dtype=int)
    for rows, cols in tile_grid(shape, tile, overlap):
        assert rows.start >= 0 and rows.stop <= shape[0] and rows.stop - rows.start == ty
        assert cols.start >= 0 and cols.stop <= shape[1] and cols.stop - cols.start == tx
        count[rows, cols] += 1
    assert count.min() >= 1


@pytest.mark.parametrize(
    "length, tile, overlap, match",
    [(10, 32, 0, "pad it first"), (64, 32, 32, "overlap"), (64, 32, -1, "overlap"), (64, 0, 0, "positive")],
)
def test_bad_grid_settings_are_refused(length, tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        tile_starts(length, tile, overlap)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (5, 40), (33, 31), (3, 2, 5)])
def test_pad_then_crop_returns_the_original(shape):
    image = RNG.integers(0, 65535, size=shape, dtype=np.uint16)
    padded, crop = pad_to_at_least(image, 32)
    assert padded.dtype == image.dtype
    assert padded.shape[:2] == (max(shape[0], 32), max(shape[1], 32))
    assert padded.shape[2:] == image.shape[2:]
    np.testing.assert_array_equal(padded[crop], image)


def test_padding_reflects_and_centres():
    padded, crop = pad_to_at_least(np.array([[1, 2, 3]]), (1, 7))
    np.testing.assert_array_equal(padded, [[3, 2, 1, 2, 3, 2, 1]])
    assert crop == (slice(0, 1), slice(2, 5))
    padded, _ = pad_to_at_least(np.array([[9]]), 4)
    np.testing.assert_array_equal(padded, np.full((4, 4), 9))


def test_no_padding_when_large_enough():
    image = np.zeros((40, 50))
    padded, crop = pad_to_at_least(image, (40, 32))
    assert padded is image
    assert crop == (slice(0, 40), slice(0, 50))


@pytest.mark.parametrize("tile", [32, (16, 48), 1, 2])
def test_blend_window(tile):
    window = blend_window(tile, floor=0.05)
    ty, tx = (tile, tile) if isinstance(tile, int) else tile
    assert window.shape == (ty, tx) and window.dtype == np.float32
    assert window.min() >= 0.05 and window.max() <= 1.0
    np.testing.assert_allclose(window, window[::-1, ::-1], atol=1e-7)
    assert window[ty // 2, tx // 2] == window.max()
    assert window[0, 0] == window.min()


def test_blend_window_refuses_zero_floor():
    with pytest.raises(ValueError, match="floor"):
        blend_window(32, floor=0.0)


@pytest.mark.parametrize("shape", [(64, 64), (100, 37), (129, 65)])
def test_stitching_constant_tiles_gives_the_constant(shape):
    grid = tile_grid(shape, 32, 8)
    stitcher = Stitcher(shape, blend_window(32))
    for region in grid:
        stitcher.add(region, np.full((32, 32, 1), 0.7, dtype=np.float32))
    result = stitcher.result()
    assert result.shape == shape and result.dtype == np.float32
    np.testing.assert_allclose(result, 0.7, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32), (64, 64), (100, 37), (37, 100), (129, 65), (250, 301)])
def test_stitching_tiles_of_an_image_reconstructs_it(shape):
    image = RNG.random(shape, dtype=np.float32)
    stitcher = Stitcher(shape, blend_window(32))
    for region in tile_grid(shape, 32, 12):
        stitcher.add(region, image[region])
    np.testing.assert_allclose(stitcher.result(), image, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (5, 20), (20, 5), (31, 33), (64, 64), (100, 37), (129, 200)])
@pytest.mark.parametrize("context", [None, 3])
def test_predict_tiled_with_identity_reconstructs_the_image(shape, context):
    image = RNG.random(shape if context is None else shape + (context,), dtype=np.float32)
    result = predict_tiled(image, identity, tile=32, overlap=8, batch_size=3)
    expected = image if context is None else image[..., context // 2]
    assert result.shape == shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_predict_tiled_reports_progress_and_batches():
    calls, batches = [], []

    def predict(batch):
        batches.append(batch.shape)
        return batch[..., 0]  # (N, ty, tx) predictions are accepted too

    image = RNG.random((100, 70), dtype=np.float32)
    predict_tiled(image, predict, tile=32, overlap=0, batch_size=5, progress=lambda *a: calls.append(a))
    total = len(tile_grid(image.shape, 32, 0))
    assert [shape[0] for shape in batches] == [5] * (total // 5) + ([total % 5] if total % 5 else [])
    assert all(shape[1:] == (32, 32, 1) for shape in batches)
    assert calls[-1][:2] == (total, total)
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)


def test_predict_tiled_stops_when_cancelled():
    token = CancelToken()

    def predict(batch):
        token.cancel()
        return batch

    with pytest.raises(Cancelled):
        predict_tiled(RNG.random((128, 128)), predict, tile=32, overlap=0, batch_size=1, cancel=token)


def test_stitcher_refuses_wrong_tiles_and_gaps():
    stitcher = Stitcher((64, 64), blend_window(32))
    with pytest.raises(ValueError, match="expected"):
        stitcher.add((slice(0, 32), slice(0, 32)), np.zeros((16, 32)))
    stitcher.add((slice(0, 32), slice(0, 32)), np.zeros((32, 32)))
    with pytest.raises(ValueError, match="not covered"):
        stitcher.result()
