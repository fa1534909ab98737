"""Objects of a real mask stack (Lucchi++ mitochondria labels) measured by core.measure,
checked against a count the test makes itself with scipy.ndimage.label + numpy.bincount."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from emviewer.core.errors import ImageContentError, InputError, InputWarning, ShapeMismatchError
from emviewer.core.io import ReadOptions, open_volume
from emviewer.core.measure import ObjectTable, label_objects, measure_objects, measure_volume, write_csv

SLICES = range(40, 48)
CROP = (slice(0, 384), slice(0, 512))


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.fixture
def real_masks(lucchi: Path) -> np.ndarray:
    """``(8, 384, 512)`` uint8 0/255: mitochondria labels of consecutive FIB-SEM slices."""
    return np.stack([_read(lucchi / "labels" / f"train_{i:03d}.png")[CROP] for i in SLICES])


@pytest.fixture
def real_image(lucchi: Path) -> np.ndarray:
    return np.stack([_read(lucchi / "images" / f"train_{i:03d}.png")[CROP] for i in SLICES])


def _tiff(tmp_path: Path, name: str, array: np.ndarray) -> Path:
    path = tmp_path / name
    tifffile.imwrite(path, array, photometric="minisblack")
    return path


def _reference(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent count: labels and voxels per object (raster order of first voxel)."""
    labels, n = ndimage.label(mask, structure=structure)
    return labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def test_objects_and_volumes_match_an_independent_count(tmp_path, real_masks):
    ref_labels, ref_sizes = _reference(real_masks > 0, np.ones((3, 3, 3)))
    assert len(ref_sizes) >= 5  # the crop holds several mitochondria

    with open_volume(_tiff(tmp_path, "masks.tif", real_masks), ReadOptions(pixel_size=(5, 5, 5))) as masks:
        table = measure_volume(masks)

    assert table.dims == 3 and table.unit == "um"
    assert len(table) == len(ref_sizes)
    np.testing.assert_array_equal(table.columns["voxels"], ref_sizes)
    np.testing.assert_allclose(table.columns["volume_um3"], ref_sizes * 125 / 1e9)
    assert table.total_size == pytest.approx(np.count_nonzero(real_masks) * 125 / 1e9)
    centres = ndimage.center_of_mass(real_masks > 0, ref_labels, range(1, len(ref_sizes) + 1))
    got = np.stack([table.columns[f"centroid_{a}_px"] for a in "zyx"], axis=1)
    np.testing.assert_allclose(got, np.array(centres), atol=1e-9)
    spans = ndimage.find_objects(ref_labels)
    assert table.columns["first_slice"].tolist() == [s[0].start for s in spans]
    assert table.columns["last_slice"].tolist() == [s[0].stop - 1 for s in spans]
    np.testing.assert_array_equal(table.labels, ref_labels)


def test_anisotropic_voxels_give_physical_units(real_masks):
    z, y, x = 50.0, 7.0, 5.0
    table = measure_objects(real_masks > 0, pixel_size=(z, y, x))
    voxels = table.columns["voxels"]
    np.testing.assert_allclose(table.columns["volume_um3"], voxels * z * y * x / 1e9)
    np.testing.assert_allclose(table.columns["centroid_z_um"], table.columns["centroid_z_px"] * z / 1000)
    np.testing.assert_allclose(table.columns["centroid_x_um"], table.columns["centroid_x_px"] * x / 1000)
    volume = table.columns["volume_um3"]
    np.testing.assert_allclose(table.columns["equivalent_diameter_um"], np.cbrt(6 * volume / math.pi))


def test_an_ellipsoid_on_anisotropic_voxels_has_its_size_and_length():
    # semi-axes 1.0 (z), 0.3 (y), 0.5 (x) µm sampled at 50 x 10 x 10 nm
    zz, yy, xx = np.mgrid[-25:26, -40:41, -60:61].astype(float)
    ellipsoid = (zz * 0.05 / 1.0) ** 2 + (yy * 0.01 / 0.3) ** 2 + (xx * 0.01 / 0.5) ** 2 <= 1
    table = measure_objects(ellipsoid, pixel_size=(50, 10, 10))
    assert len(table) == 1
    assert table.columns["volume_um3"][0] == pytest.approx(4 / 3 * math.pi * 1.0 * 0.3 * 0.5, rel=0.02)
    assert table.columns["major_axis_length_um"][0] == pytest.approx(2.0, rel=0.02)
    assert table.columns["slices"][0] == 41


def test_min_size_drops_the_small_objects(real_masks):
    _, ref_sizes = _reference(real_masks > 0, np.ones((3, 3, 3)))
    limit = 1000
    assert (ref_sizes < limit).any() and (ref_sizes >= limit).any()

    table = measure_objects(real_masks > 0, min_size=limit)

    np.testing.assert_array_equal(table.columns["voxels"], ref_sizes[ref_sizes >= limit])
    assert table.columns["id"].tolist() == list(range(1, len(table) + 1))
    assert np.bincount(table.labels.ravel())[1:].tolist() == table.columns["voxels"].tolist()


def test_a_single_image_is_measured_in_2d(tmp_path, real_masks):
    path = tmp_path / "mask.png"
    Image.fromarray(real_masks[3]).save(path)
    ref_labels, ref_sizes = _reference(real_masks[3] > 0, np.ones((3, 3)))

    with open_volume(path, ReadOptions(pixel_size=(1, 5, 4))) as masks:
        table = measure_volume(masks)

    assert table.dims == 2 and table.size_column == "area_um2"
    assert len(table) == len(ref_sizes)
    np.testing.assert_array_equal(table.columns["pixels"], ref_sizes)
    np.testing.assert_allclose(table.columns["area_um2"], ref_sizes * 5 * 4 / 1e6)
    np.testing.assert_allclose(table.columns["equivalent_diameter_um"], np.sqrt(4 * ref_sizes * 20 / 1e6 / math.pi))
    assert "centroid_z_um" not in table.columns and "volume_um3" not in table.columns


def test_per_slice_labelling_of_a_stack_counts_each_slice(real_masks):
    table = measure_objects(real_masks > 0, per_slice=True)
    expected = sum(ndimage.label(s > 0, structure=np.ones((3, 3)))[1] for s in real_masks)
    assert len(table) == expected and table.dims == 2
    assert (table.columns["slices"] == 1).all()


def test_without_a_pixel_size_the_csv_says_pixels(tmp_path, real_masks):
    with open_volume(_tiff(tmp_path, "masks.tif", real_masks)) as masks:
        assert masks.pixel_size is None
        table = measure_volume(masks)
    out = write_csv(table, tmp_path / "objects.csv")

    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert table.unit == "px"
    assert "voxels" in header and "equivalent_diameter_px" in header and "major_axis_length_px" in header
    assert not any(name.endswith(("_um", "_um2", "_um3")) for name in header)
    assert [int(r["voxels"]) for r in rows] == table.columns["voxels"].tolist()
    assert "no voxel size" in table.summary()


def test_an_unknown_slice_spacing_falls_back_to_voxels_with_a_warning(real_masks):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = measure_objects(real_masks > 0, pixel_size=(None, 5, 5))
    assert table.unit == "px"
    assert any(issubclass(w.category, InputWarning) and "slice spacing" in str(w.message) for w in caught)


def test_mean_intensity_is_that_of_the_image_under_each_object(real_masks, real_image):
    ref_labels, ref_sizes = _reference(real_masks > 0, np.ones((3, 3, 3)))
    table = measure_objects(real_masks > 0, image=real_image)
    expected = ndimage.mean(real_image, ref_labels, range(1, len(ref_sizes) + 1))
    np.testing.assert_allclose(table.columns["mean_intensity"], expected)


def test_zero_one_labels_are_masks_too(tmp_path, cdeep3m):
    labels = np.stack([_read(p)[:256, :256] for p in sorted((cdeep3m / "training" / "labels").glob("*.png"))[:4]])
    assert set(np.unique(labels).tolist()) == {0, 1}
    with open_volume(_tiff(tmp_path, "labels.tif", labels)) as masks:
        table = measure_volume(masks)
    assert len(table) == len(_reference(labels > 0, np.ones((3, 3, 3)))[1])


def test_a_mask_that_is_not_binary_is_refused(tmp_path, real_image):
    with open_volume(_tiff(tmp_path, "image.tif", real_image)) as volume, pytest.raises(ImageContentError) as info:
        measure_volume(volume)
    assert "not binary" in str(info.value) and "image.tif" in str(info.value)


def test_an_image_of_another_shape_is_refused(tmp_path, real_masks, real_image):
    masks = open_volume(_tiff(tmp_path, "masks.tif", real_masks))
    image = open_volume(_tiff(tmp_path, "image.tif", real_image[:3]))
    with masks, image, pytest.raises(ShapeMismatchError) as info:
        measure_volume(masks, image)
    assert isinstance(info.value, InputError) and "image.tif" in str(info.value)


def test_voxels_touching_at_a_corner_are_one_object():
    mask = np.zeros((2, 4, 4), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # corner to corner across slices
    assert len(measure_objects(mask)) == 1
    assert len(measure_objects(mask, per_slice=True)) == 2


def test_label_objects_with_nothing_to_label():
    labels, n = label_objects(np.zeros((2, 5, 5), bool), min_size=3)
    assert n == 0 and not labels.any()
    table = measure_objects(np.zeros((2, 5, 5), bool), pixel_size=(5, 5, 5))
    assert isinstance(table, ObjectTable) and len(table) == 0 and table.total_size == 0
