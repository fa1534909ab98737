"""Every reader on real EM data, plus laziness on a generated 2 GB stack."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.io import open_volume, split_dataset
from emviewer.core.io.common import natural_key


@pytest.fixture
def stack(cdeep3m):
    """Three real 1024x1024 uint8 SBEM slices (images.010-012) as (Z, Y, X)."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-2].png"))
    return np.stack([np.asarray(Image.open(f)) for f in files])


def test_png_folder_reads_real_slices_in_numeric_order(cdeep3m, stack):
    volume = open_volume(cdeep3m / "training" / "images")
    assert volume.shape == (20, 1024, 1024) and volume.dtype == np.uint8
    assert volume.slice_names[:3] == ["images.010", "images.011", "images.012"]
    np.testing.assert_array_equal(volume.slice(1), stack[1])
    np.testing.assert_array_equal(volume[0:3], stack)


def test_natural_order_puts_img2_before_img10(tmp_path, stack):
    for n in (10, 2, 1):
        Image.fromarray(stack[0][:64, :64] + n).save(tmp_path / f"img{n}.png")
    volume = open_volume(tmp_path)
    assert volume.slice_names == ["img1", "img2", "img10"]
    assert volume.slice(2)[0, 0] == stack[0][0, 0] + 10
    assert sorted(["img10", "img2"], key=natural_key) == ["img2", "img10"]


def test_folder_of_tiff_and_jpeg_slices(tmp_path, stack):
    tif_dir, jpg_dir = tmp_path / "tif", tmp_path / "jpg"
    tif_dir.mkdir(), jpg_dir.mkdir()
    for z, plane in enumerate(stack):
        tifffile.imwrite(tif_dir / f"s{z}.tif", plane.astype(np.uint16) * 40)
        Image.fromarray(plane).save(jpg_dir / f"s{z}.jpg", quality=95)
    tifs = open_volume(tif_dir)
    assert tifs.dtype == np.uint16
    np.testing.assert_array_equal(tifs.read(), stack.astype(np.uint16) * 40)
    jpgs = open_volume(jpg_dir)
    assert jpgs.shape == stack.shape
    assert np.abs(jpgs.read().astype(int) - stack).mean() < 4  # lossy, but close


def test_split_dataset_only_after_hdf5_or_zarr_names():
    assert split_dataset("a/b.h5:/x/y") == (split_dataset("a/b.h5")[0], "/x/y")
    assert split_dataset("C:/data/img.tif")[1] is None


def test_single_images_of_each_depth(tmp_path, cdeep3m, stack):
    volume = open_volume(cdeep3m / "validation" / "images" / "images.050.png")
    assert volume.shape == (1, 1024, 1024) and volume.slice_names == ["images.050"]
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(stack[0].astype(np.uint16) * 257).save(sixteen)
    assert open_volume(sixteen).dtype == np.uint16
    as_float = tmp_path / "float.tif"
    tifffile.imwrite(as_float, stack[0].astype(np.float32) / 255)
    assert open_volume(as_float).dtype == np.float32


def test_rgb_images_become_grey(tmp_path, stack):
    rgb = np.repeat(stack[0][..., None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([rgb, rgb]), photometric="rgb")
    np.testing.assert_array_equal(open_volume(tmp_path / "rgb.png").slice(0), stack[0])
    with open_volume(tmp_path / "rgb.tif") as volume:
        assert volume.shape == (2, 1024, 1024)
        np.testing.assert_array_equal(volume.slice(1), stack[0])


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.parametrize("kind", ["tif", "h5"])
def test_2gb_stack_opens_without_reading_it(tmp_path, kind):
    shape = (8, 16384, 16384)  # 2 GiB of uint8; both files are sparse on disk
    path = tmp_path / f"big.{kind}"
    if kind == "tif":
        big = tifffile.memmap(path, shape=shape, dtype=np.uint8, imagej=True)
        big[3, :2, :2] = 7
        big.flush()
        del big
    else:
        with h5py.File(path, "w") as h5:
            ds = h5.create_dataset("raw", shape=shape, dtype=np.uint8, chunks=(1, 1024, 1024))
            ds[3, :2, :2] = 7
    before = _resident_mb()
    with open_volume(path) as volume:
        assert volume.nbytes == 2**31
        corner = volume[3, :2, :2]
        grown = _resident_mb() - before
    assert corner.tolist() == [[7, 7], [7, 7]]
    assert grown < 300, f"opening a 2 GiB stack grew memory by {grown:.0f} MB"
