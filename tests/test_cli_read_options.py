"""--pixel-size, --channel and --axes on the command line; voxel sizes through every export."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from pypdf import PdfReader

from emviewer.core.io import open_volume


@pytest.fixture
def em_tif(tmp_path, cdeep3m):
    """Three real SBEM crops (uint8, 96 x 128) as a plain TIFF stack without calibration."""
    import tifffile
    from PIL import Image

    files = [cdeep3m / "validation" / "images" / f"images.05{i}.png" for i in range(3)]
    stack = np.stack([np.asarray(Image.open(f))[800:896, 400:528] for f in files])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack)
    return path, stack


@pytest.mark.parametrize("suffix", [".h5", ".tif", ".raw", ".zarr"])
def test_voxel_size_survives_every_stack_export(run_cli, em_tif, tmp_path, suffix):
    path, stack = em_tif
    out = tmp_path / f"out{suffix}"
    code, _, err = run_cli("export", str(path), "-o", str(out), "--pixel-size", "50,7,7")
    assert code == 0, err
    with open_volume(out) as back:
        np.testing.assert_array_equal(back.read(), stack)
        assert back.pixel_size == pytest.approx((50, 7, 7))


def test_pdf_report_states_the_voxel_size(run_cli, em_tif, tmp_path):
    path, _ = em_tif
    out = tmp_path / "report.pdf"
    assert run_cli("export", str(path), "-o", str(out), "--pixel-size", "50,7,7")[0] == 0
    assert "50 x 7 x 7 nm (z, y, x)" in PdfReader(out).pages[0].extract_text()


def test_pdf_of_predicted_masks_names_the_model_mode_and_threshold(run_cli, em_tif, tmp_path):
    """`predict --format h5` records how the masks were made; `export` of those masks carries it to the PDF."""
    import json

    import h5py

    path, _ = em_tif
    assert run_cli("predict", str(path), "--object", "mito", "-o", str(tmp_path / "pred"), "--format", "h5")[0] == 0
    h5 = tmp_path / "pred" / "prediction.h5"
    with h5py.File(h5, "r") as f:
        model = json.loads(f.attrs["parameters"])["models"]["mito"][0]
    out = tmp_path / "report.pdf"
    assert run_cli("export", str(path), "--mask", f"{h5}:/masks/mito", "-o", str(out))[0] == 0
    text = PdfReader(out).pages[0].extract_text()
    for fact in (model["name"], model["sha256"][:12], "fast", f"{model['threshold']:.2f}", "this computer"):
        assert fact in text, fact


def test_info_describes_a_file_and_honours_overrides(run_cli, em_tif):
    path, stack = em_tif
    code, out, _ = run_cli("info", str(path), "--json")
    info = json.loads(out)
    assert code == 0 and info["shape_zyx"] == list(stack.shape) and info["dtype"] == "uint8"
    assert info["pixel_size_nm_zyx"] is None
    code, out, _ = run_cli("info", str(path), "--pixel-size", "30,4,4")
    assert code == 0 and "30 x 4 x 4 nm (z, y, x) (--pixel-size)" in out


def test_channel_and_axes_choose_what_is_read(run_cli, em_tif, tmp_path):
    _, stack = em_tif
    path = tmp_path / "zyxc.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.stack([stack, 255 - stack], axis=-1)  # (Z, Y, X, C), nothing says so
    code, _, err = run_cli("export", str(path), "-o", str(tmp_path / "a.raw"))
    assert code == 2 and "2 channels" in err and "--channel" in err and str(path) in err
    assert not (tmp_path / "a.raw").exists()
    assert run_cli("export", str(path), "-o", str(tmp_path / "b.raw"), "--channel", "1")[0] == 0
    np.testing.assert_array_equal(open_volume(tmp_path / "b.raw").read(), 255 - stack)
    # Read as C, Z, Y, X on purpose: then the 3 slices are channels and the 2 "channels" are Z.
    code, _, err = run_cli("export", str(path), "-o", str(tmp_path / "c.raw"), "--axes", "CYXZ", "--channel", "0")
    assert code == 0, err
    assert open_volume(tmp_path / "c.raw").shape == (2, 96, 128)
    code, _, err = run_cli("export", str(path), "-o", str(tmp_path / "d.raw"), "--axes", "ZYX")
    assert code == 2 and "name 3 axes but the array has 4" in err


@pytest.mark.parametrize("bad", ["50,7", "0,7,7", "a,b,c", "-1,7,7"])
def test_bad_pixel_size_is_refused_by_the_parser(run_cli, em_tif, bad):
    path, _ = em_tif
    code, _, err = run_cli("info", str(path), f"--pixel-size={bad}")
    assert code == 2 and "voxel size Z,Y,X in nm" in err


def test_nan_pixels_are_reported_once_and_predicted_as_background(run_cli, em_tif, tmp_path):
    import tifffile

    _, stack = em_tif
    values = stack.astype(np.float32) / 255 * 3.7 - 1.2
    holes = np.zeros(values.shape, bool)
    holes[:, ::7, ::5] = True
    values[holes] = np.nan
    path = tmp_path / "holes.tif"
    tifffile.imwrite(path, values)
    code, _, err = run_cli(
        "predict",
        str(path),
        "-o",
        str(tmp_path / "masks"),
        "--object",
        "mito",
        "--format",
        "tif",
        "--pixel-size",
        "50,7,7",
    )
    assert code == 0, err
    assert err.count("NaN or infinite") == 1
    with open_volume(tmp_path / "masks" / "mito.tif") as masks:
        assert masks.read().any() and not masks.read()[holes].any()
        assert masks.pixel_size == pytest.approx((50, 7, 7))  # the masks keep the input's voxel size
