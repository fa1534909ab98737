"""``emviewer measure`` on masks as ``emviewer predict`` writes them (PNG folder, TIFF, HDF5),
made from real Lucchi++ labels with the project's own PredictionWriter."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from emviewer.core.predict import SliceResult
from emviewer.core.prediction_output import PredictionWriter, write_predictions

SLICES = range(60, 66)
CROP = (slice(200, 456), slice(300, 620))
VOXEL = (50.0, 5.0, 5.0)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


@pytest.fixture
def labels(lucchi: Path) -> np.ndarray:
    """``(6, 256, 320)`` uint8 0/255 mitochondria labels."""
    return np.stack([_read(lucchi / "labels" / f"train_{i:03d}.png")[CROP] for i in SLICES])


@pytest.fixture
def image(lucchi: Path, tmp_path: Path) -> Path:
    path = tmp_path / "image.tif"
    stack = np.stack([_read(lucchi / "images" / f"train_{i:03d}.png")[CROP] for i in SLICES])
    tifffile.imwrite(path, stack, photometric="minisblack")
    return path


def _predict_style(labels: np.ndarray, outdir: Path, fmt: str) -> Path:
    """Write ``labels`` as ``emviewer predict --object mito --format fmt`` does; return the MASKS spec."""
    results = (
        SliceResult(z, f"train_{n:03d}", {"mito": (plane > 0).astype(np.float32)})
        for z, (n, plane) in enumerate(zip(SLICES[: len(labels)], labels, strict=True))
    )
    write_predictions(results, PredictionWriter(outdir, ["mito"], fmt, pixel_size=VOXEL))
    return {"png": outdir, "tif": outdir / "mito.tif", "h5": Path(f"{outdir / 'prediction.h5'}:/masks/mito")}[fmt]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _reference_sizes(labels: np.ndarray) -> np.ndarray:
    ref, n = ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))
    return np.bincount(ref.ravel(), minlength=n + 1)[1:]


@pytest.mark.parametrize("fmt", ["png", "tif", "h5"])
def test_measure_predict_output(run_cli, tmp_path, labels, fmt):
    masks = _predict_style(labels, tmp_path / "pred", fmt)
    out = tmp_path / "objects.csv"

    code, stdout, stderr = run_cli("measure", masks, "-o", out)

    assert code == 0, stderr
    rows = _rows(out)
    sizes = _reference_sizes(labels)
    assert len(rows) == len(sizes) >= 3
    assert [int(r["voxels"]) for r in rows] == sizes.tolist()
    assert [int(r["id"]) for r in rows] == list(range(1, len(rows) + 1))
    if fmt == "png":  # slices carry no voxel size: pixel units, said so
        assert "volume_um3" not in rows[0] and "equivalent_diameter_px" in rows[0]
        assert "voxels" in stdout and "--pixel-size" in stdout
    else:  # TIFF and HDF5 record the input's voxel size
        z, y, x = VOXEL
        volumes = [float(r["volume_um3"]) for r in rows]
        np.testing.assert_allclose(volumes, sizes * z * y * x / 1e9, rtol=1e-5)
        assert "µm³" in stdout
    assert stdout.count("\n") == 1 and f"{len(rows)} objects" in stdout


def test_pixel_size_image_and_min_size(run_cli, tmp_path, labels, image):
    masks = _predict_style(labels, tmp_path / "pred", "png")
    out = tmp_path / "objects.csv"
    sizes = _reference_sizes(labels)
    limit = int(np.median(sizes)) + 1

    code, _, stderr = run_cli(
        "measure", masks, "--image", image, "--pixel-size", "40,8,6", "--min-size", limit, "-o", out
    )

    assert code == 0, stderr
    rows = _rows(out)
    kept = sizes[sizes >= limit]
    assert 0 < len(rows) == len(kept) < len(sizes)
    np.testing.assert_allclose([float(r["volume_um3"]) for r in rows], kept * 40 * 8 * 6 / 1e9, rtol=1e-5)
    means = [float(r["mean_intensity"]) for r in rows]
    assert all(0 < m < 255 for m in means)
    assert list(rows[0])[:4] == ["id", "first_slice", "last_slice", "slices"]


def test_a_single_mask_image_gives_areas(run_cli, tmp_path, labels):
    path = tmp_path / "mask.png"
    Image.fromarray(labels[0]).save(path)
    out = tmp_path / "objects.csv"

    code, stdout, stderr = run_cli("measure", path, "--pixel-size", "1,5,5", "-o", out)

    assert code == 0, stderr
    rows = _rows(out)
    n = ndimage.label(labels[0] > 0, structure=np.ones((3, 3)))[1]
    assert len(rows) == n and "area_um2" in rows[0] and "(2D)" in stdout and "µm²" in stdout


def test_an_image_given_as_masks_fails_with_one_line(run_cli, tmp_path, image):
    out = tmp_path / "objects.csv"
    code, stdout, stderr = run_cli("measure", image, "-o", out)
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "not binary" in stderr and "image.tif" in stderr
    assert not out.exists()


def test_a_missing_file_or_another_shape_fails_with_exit_2(run_cli, tmp_path, labels, image):
    out = tmp_path / "objects.csv"
    code, _, stderr = run_cli("measure", tmp_path / "nothing.tif", "-o", out)
    assert code == 2 and stderr.count("\n") == 1 and "nothing.tif" in stderr

    masks = _predict_style(labels[:3], tmp_path / "pred", "tif")
    code, _, stderr = run_cli("measure", masks, "--image", image, "-o", out)
    assert code == 2 and stderr.count("\n") == 1 and "shape" in stderr
    assert not out.exists()


def test_a_negative_min_size_is_refused(run_cli, tmp_path, labels):
    masks = _predict_style(labels, tmp_path / "pred", "tif")
    code, _, stderr = run_cli("measure", masks, "--min-size", "-3", "-o", tmp_path / "o.csv")
    assert code == 2 and "min-size" in stderr
