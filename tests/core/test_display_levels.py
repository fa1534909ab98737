"""Slices read at the viewer's level of detail: overviews, windows, OME-Zarr pyramid levels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from emviewer.core.display_levels import OVERVIEW_SIDE, SliceLevels, overview_step, power_of_two_at_most, snap_box
from emviewer.core.io import open_volume
from emviewer.core.volume import LazySlices, Volume, decodes_whole_slices, from_array, map_slices


def ramp(shape: tuple[int, int, int]) -> np.ndarray:
    """A stack whose every voxel value tells where it is (wrapping at 2**16)."""
    z, y, x = np.indices(shape, dtype=np.uint32)
    return ((z * 7919 + y * 131 + x) % 65536).astype(np.uint16)


def test_steps_and_boxes():
    assert overview_step((OVERVIEW_SIDE, OVERVIEW_SIDE)) == 1
    assert overview_step((OVERVIEW_SIDE + 1, 10)) == 2
    assert overview_step((10000, 16000)) == 8
    assert [power_of_two_at_most(r) for r in (0.3, 1, 1.9, 2, 7.9, 8)] == [1, 1, 1, 2, 4, 8]
    assert snap_box((5, 13, 9, 30), 4, (14, 100)) == (4, 14, 8, 32)
    assert snap_box((-3, 5, 90, 120), 4, (14, 100)) == (0, 8, 88, 100)


def test_windows_of_a_memory_mapped_tiff_are_the_strided_pixels(tmp_path):
    stack = ramp((2, 4100, 300))
    tifffile.imwrite(tmp_path / "tall.tif", stack, photometric="minisblack")
    levels = SliceLevels(open_volume(tmp_path / "tall.tif"))
    assert levels.overview_step == 4
    overview = levels.overview(1)
    np.testing.assert_array_equal(overview.image, stack[1, ::4, ::4])
    assert overview.box == (0, 4100, 0, 300)
    window = levels.window(1, (1001, 1203, 17, 99), 2)
    assert window.box == (1000, 1204, 16, 100)
    np.testing.assert_array_equal(window.image, stack[1, 1000:1204:2, 16:100:2])
    assert window.value_at(1003, 19) == stack[1, 1002, 18]
    assert window.value_at(999, 19) is None
    assert levels.overview(1) is overview  # kept


class CountedSlices(LazySlices):
    """A stack decoded a whole slice at a time (as a folder of PNGs is), counting decodes."""

    def __init__(self, stack: np.ndarray) -> None:
        self.stack, self.shape, self.dtype, self.reads = stack, stack.shape, stack.dtype, 0

    def _read(self, z: int) -> np.ndarray:
        self.reads += 1
        return self.stack[z].copy()


def test_a_stack_that_decodes_whole_slices_is_decoded_once_per_slice():
    stack = ramp((3, 64, 80))
    data = CountedSlices(stack)
    levels = SliceLevels(Volume(data, "counted"))
    for box in [(0, 64, 0, 80), (3, 9, 4, 70), (10, 60, 0, 8)]:
        window = levels.window(2, box, 1)
        np.testing.assert_array_equal(window.image, stack[2, box[0] : box[1], box[2] : box[3]])
    assert data.reads == 1
    levels.window(1, (0, 8, 0, 8), 1)
    assert data.reads == 2


def test_a_pixelwise_view_decodes_whole_slices_only_where_its_source_does(tmp_path):
    stack = ramp((2, 64, 80))
    tifffile.imwrite(tmp_path / "mapped.tif", stack, photometric="minisblack")
    mapped = open_volume(tmp_path / "mapped.tif")  # memory-mapped: rows are read as rows
    decoded = Volume(CountedSlices(stack), "counted")
    assert not decodes_whole_slices(mapped) and decodes_whole_slices(decoded)
    assert not decodes_whole_slices(map_slices(mapped, np.negative, pixelwise=True))
    assert decodes_whole_slices(map_slices(decoded, np.negative, pixelwise=True))
    assert decodes_whole_slices(map_slices(mapped, lambda image: image[::-1]))  # not pixel-wise: whole slices


def test_ome_zarr_pyramid_levels_serve_the_coarse_steps(tmp_path):
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    stack = ramp((2, 1000, 1202))
    root = zarr.open_group(str(tmp_path / "pyramid.zarr"), mode="w")
    write_image(stack, root, axes="zyx", scale_factors=(2, 4, 8), method=Methods.LOCAL_MEAN)
    volume = open_volume(tmp_path / "pyramid.zarr")
    assert [level.shape for level in volume.overviews] == [(2, 500, 601), (2, 250, 300), (2, 125, 150)]
    levels = SliceLevels(volume)
    coarse = np.asarray(volume.overviews[2][1])
    window = levels.window(1, (0, 1000, 0, 1202), 8)
    np.testing.assert_array_equal(window.image, coarse)  # the stored level, not the strided full resolution
    assert not np.array_equal(window.image, stack[1, ::8, ::8])
    half = levels.window(1, (100, 300, 40, 100), 16)  # past the last level: the coarsest, strided
    assert half.box == (96, 304, 32, 112)
    np.testing.assert_array_equal(half.image, coarse[12:38:2, 4:14:2])
    np.testing.assert_array_equal(levels.window(1, (10, 20, 10, 20), 1).image, stack[1, 10:20, 10:20])


def test_overviews_of_another_shape_are_not_used():
    volume = from_array(ramp((1, 64, 64)))
    volume.overviews = (np.zeros((1, 20, 20), np.uint16), np.zeros((2, 32, 32), np.uint16))
    assert SliceLevels(volume)._levels == []


@pytest.mark.parametrize("level", [1, 2])
def test_a_chosen_coarser_level_is_read_with_the_levels_beyond_it(tmp_path, level):
    from ome_zarr.scale import Methods
    from ome_zarr.writer import write_image

    stack = ramp((1, 256, 256))
    write_image(
        stack,
        zarr.open_group(str(tmp_path / "p.zarr"), mode="w"),
        axes="zyx",
        scale_factors=(2, 4, 8),
        method=Methods.LOCAL_MEAN,
    )
    volume = open_volume(f"{tmp_path / 'p.zarr'}:level={level}")
    assert volume.shape == (1, 256 >> level, 256 >> level)
    assert [v.shape[1] for v in volume.overviews] == [256 >> k for k in range(level + 1, 4)]
