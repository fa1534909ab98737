"""Tests for emviewer.core.tiling: the tile layout prediction uses, padding, blending window and stitching.

That tiled prediction matches whole-slice prediction, reports progress per batch and stops on
cancel is tested on the predictor itself, in test_predict.py."""

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from emviewer.core.tiling import Stitcher, TileLayout, blend_window, tile_grid, tile_starts

RNG = np.random.default_rng(1)
TILE = 256


def pad(image: np.ndarray, tile: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The padded slice a layout's tiles are cut from, built whole, and where the slice lies in it."""
    layout = TileLayout(image.shape[:2], tile, 0)
    whole = (slice(0, layout.padded_shape[0]), slice(0, layout.padded_shape[1]))
    return layout.cut(image, whole), layout.crop


@pytest.fixture(scope="module")
def em_slice(cdeep3m) -> np.ndarray:
    with Image.open(cdeep3m / "validation" / "images" / "images.050.png") as img:
        return np.asarray(img)


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
    for previous, current in pairwise(starts):
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
    padded, crop = pad(image, 32)
    assert padded.dtype == image.dtype
    assert padded.shape[:2] == (max(shape[0], 32), max(shape[1], 32))
    assert padded.shape[2:] == image.shape[2:]
    np.testing.assert_array_equal(padded[crop], image)


def test_padding_reflects_and_centres():
    padded, crop = pad(np.array([[1, 2, 3]]), 7)
    np.testing.assert_array_equal(padded, np.tile([3, 2, 1, 2, 3, 2, 1], (7, 1)))  # one row: repeated
    assert crop == (slice(3, 4), slice(2, 5))
    padded, _ = pad(np.array([[9]]), 4)
    np.testing.assert_array_equal(padded, np.full((4, 4), 9))


def test_no_padding_when_large_enough():
    image = RNG.random((40, 50))
    padded, crop = pad(image, 32)
    np.testing.assert_array_equal(padded, image)
    assert crop == (slice(0, 40), slice(0, 50))


def _assert_mirrored(padded: np.ndarray, image: np.ndarray, crop: tuple[slice, slice]) -> None:
    """Padding reflects about the edge pixel: the k-th row/column outside equals the k-th inside."""
    ys, xs = crop
    h, w = image.shape
    for k in range(1, min(ys.start, h - 1) + 1):
        np.testing.assert_array_equal(padded[ys.start - k, xs], image[k])
    for k in range(1, min(padded.shape[0] - ys.stop, h - 1) + 1):
        np.testing.assert_array_equal(padded[ys.stop - 1 + k, xs], image[h - 1 - k])
    for k in range(1, min(xs.start, w - 1) + 1):
        np.testing.assert_array_equal(padded[ys, xs.start - k], image[:, k])
    for k in range(1, min(padded.shape[1] - xs.stop, w - 1) + 1):
        np.testing.assert_array_equal(padded[ys, xs.stop - 1 + k], image[:, w - 1 - k])


@pytest.mark.parametrize("shape", [(1, 1), (5, 300), (300, 5), (256, 256), (100, 37)])
def test_padding_a_real_slice_restores_the_original(shape, em_slice):
    image = em_slice[200 : 200 + shape[0], 300 : 300 + shape[1]]
    padded, crop = pad(image, TILE)
    assert padded.shape == (max(shape[0], TILE), max(shape[1], TILE)) and padded.dtype == image.dtype
    np.testing.assert_array_equal(padded[crop], image)
    if min(shape) >= 2:
        _assert_mirrored(padded, image, crop)
    else:
        assert (padded == image[0, 0]).all()


def test_padding_mirrors_a_small_slice_exactly():
    image = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    padded, crop = pad(image, 5)
    expected = np.array(
        [
            [5, 4, 5, 6, 5],
            [2, 1, 2, 3, 2],
            [5, 4, 5, 6, 5],
            [2, 1, 2, 3, 2],
            [5, 4, 5, 6, 5],
        ],
        np.uint8,
    )
    np.testing.assert_array_equal(padded, expected)
    assert crop == (slice(1, 3), slice(1, 4))


def test_padding_centres_the_slice(em_slice):
    _, crop = pad(em_slice[:100, :37], TILE)
    assert crop == (slice(78, 178), slice(109, 146))


@pytest.mark.parametrize(
    "shape, max_tile, overlap, multiple, tile, tile_overlap",
    [
        ((5, 20), 1024, 64, 32, (32, 32), (16, 16)),  # one tile, rounded up; overlap at most half a tile
        ((33, 31), 1024, 64, 32, (64, 64), (32, 32)),
        ((400, 560), 1024, 64, 32, (576, 576), (64, 64)),  # one tile: square
        ((3000, 400), 1024, 64, 32, (800, 416), (64, 64)),  # four tiles down, one across: rectangles
        ((400, 560), 128, 48, 32, (128, 128), (48, 48)),
        ((3000, 2000), 1024, 64, 32, (800, 736), (64, 64)),  # 4 x 3 tiles cover it as 1024 would: less overlap work
        ((4096, 4096), 1024, 64, 32, (896, 896), (64, 64)),
        ((16000, 10000), 1024, 64, 32, (1024, 992), (64, 64)),  # 17 rows of tiles need all of 1024
        ((1025, 700), 1024, 64, 32, (576, 704), (64, 64)),  # two tiles down, one across
        ((8192, 8192), 768, 64, 32, (768, 768), (64, 64)),
        ((8192, 8192), 768, 64, 16, (752, 752), (64, 64)),  # depth-4 models: multiples of 16 suffice
        ((1000, 1000), 1000, 64, 16, (544, 544), (64, 64)),  # max_tile rounded down to 992: two tiles per side
    ],
)
def test_the_prediction_layout_picks_the_tile_and_overlap(shape, max_tile, overlap, multiple, tile, tile_overlap):
    layout = TileLayout.for_slice(*shape, max_tile=max_tile, overlap=overlap, multiple=multiple)
    assert (layout.tile, layout.overlap) == (tile, tile_overlap)
    assert layout.regions == tile_grid(layout.padded_shape, tile, tile_overlap)
    assert layout.window().shape == tile
    image = RNG.random(shape, dtype=np.float32)
    stitcher = layout.stitcher()
    for region in layout.regions:
        stitcher.add(region, layout.cut(image, region))
    np.testing.assert_allclose(stitcher.result()[layout.crop], image, atol=1e-6)


@pytest.mark.parametrize("shape, tile, overlap", [((0, 5), 32, 0), ((5, 5), 0, 0), ((5, 5), 32, 32)])
def test_bad_layouts_are_refused(shape, tile, overlap):
    with pytest.raises(ValueError):
        TileLayout(shape, tile, overlap)


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


def test_stitcher_refuses_wrong_tiles_and_gaps():
    stitcher = Stitcher((64, 64), blend_window(32))
    with pytest.raises(ValueError, match="expected"):
        stitcher.add((slice(0, 32), slice(0, 32)), np.zeros((16, 32)))
    stitcher.add((slice(0, 32), slice(0, 32)), np.zeros((32, 32)))
    with pytest.raises(ValueError, match="not covered"):
        stitcher.result()


@pytest.mark.parametrize(
    "shape, tile, overlap", [((250, 301), 32, 12), ((100, 37), 32, 8), ((64, 64), 32, 0), ((90, 70), 32, 26)]
)
def test_rows_taken_as_tiles_arrive_equal_the_whole_map_bit_for_bit(shape, tile, overlap):
    """Rows above the next tile are final: taking them early frees them and changes nothing
    (overlap 26: the rows kept are more than those taken, so they move up in several blocks)."""
    tiles = [(region, RNG.random((tile, tile), dtype=np.float32)) for region in tile_grid(shape, tile, overlap)]
    whole = Stitcher(shape, blend_window(tile))
    for region, values in tiles:
        whole.add(region, values)
    rolling, parts = Stitcher(shape, blend_window(tile)), []
    for i, (region, values) in enumerate(tiles):
        rolling.add(region, values)
        parts.append(rolling.take(tiles[i + 1][0][0].start if i + 1 < len(tiles) else shape[0]))
    assert rolling.top == shape[0]
    assert len(rolling._sum) == tile  # never more than one tile row held
    np.testing.assert_array_equal(np.concatenate(parts), whole.result())
    with pytest.raises(ValueError, match="taken"):
        rolling.add(tiles[0][0], tiles[0][1])  # a tile above the rows handed out
