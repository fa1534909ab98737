"""Each export format read back with an independent library, on real SBEM slices and labels."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image
from pypdf import PdfReader

from emviewer.core.errors import InputError
from emviewer.core.export import export, mask_volumes, parse_slices, probability_volumes
from emviewer.core.io import open_volume
from emviewer.core.objects import OBJECTS
from emviewer.core.progress import Cancelled, CancelToken
from emviewer.core.volume import from_array


@pytest.fixture
def real(cdeep3m):
    """Three validation slices and their mitochondria labels (0/1 on disk)."""
    images = open_volume(cdeep3m / "validation" / "images")
    labels = open_volume(cdeep3m / "validation" / "labels")
    return images, labels


def _pick(volume, n=3):
    return from_array(volume[0:n], volume.source, slice_names=list(volume.slice_names[:n]))


def test_hdf5_holds_raw_masks_probabilities_and_provenance(tmp_path, real):
    images, labels = _pick(real[0]), _pick(real[1])
    probs = from_array(labels.read().astype(np.float32) * 0.9)
    export(
        tmp_path / "out.h5",
        images,
        masks={"mito": labels},
        probabilities={"mito": probs},
        provenance={"model": "tiny", "threshold": 0.5},
    )
    with h5py.File(tmp_path / "out.h5", "r") as h5:
        np.testing.assert_array_equal(h5["raw"][:], images.read())
        assert set(np.unique(h5["masks/mito"][:])) == {0, 255}
        np.testing.assert_array_equal(h5["masks/mito"][:] > 0, labels.read() > 0)
        assert h5["probabilities/mito"].dtype == np.float32
        assert h5["raw"].compression == "gzip" and h5["raw"].chunks is not None
        assert h5.attrs["model"] == "tiny" and h5.attrs["threshold"] == 0.5


def test_png_and_jpeg_per_slice_overlay_and_mask(tmp_path, real):
    images, labels = _pick(real[0]), _pick(real[1])
    written = export(tmp_path / "fig.png", images, masks={"mito": labels})
    assert [p.name for p in written] == ["fig_images.050.png", "fig_images.051.png", "fig_images.052.png"]
    overlay = np.asarray(Image.open(written[0]))
    assert overlay.shape == (1024, 1024, 3)
    inside = labels.slice(0) > 0
    colour = np.array(OBJECTS["mito"].colour)
    # Object pixels are pulled towards the object colour, background stays grey.
    assert np.abs(overlay[inside].mean(0) - colour).sum() < np.abs(overlay[~inside].mean(0) - colour).sum()
    assert np.all(overlay[~inside][:, 0] == overlay[~inside][:, 1])

    masks = export(tmp_path / "m.png", images, masks={"mito": labels}, content="mask")
    np.testing.assert_array_equal(np.asarray(Image.open(masks[1])), np.where(labels.slice(1) > 0, 255, 0))

    jpgs = export(tmp_path / "raw.jpg", images, content="raw")
    decoded = np.asarray(Image.open(jpgs[2])).astype(int)
    assert decoded.shape == (1024, 1024) and np.corrcoef(decoded.ravel(), images.slice(2).ravel())[0, 1] > 0.98


def test_tiff_is_imagej_multipage(tmp_path, real):
    images = _pick(real[0])
    export(tmp_path / "stack.tif", images)
    with tifffile.TiffFile(tmp_path / "stack.tif") as tif:
        assert tif.is_imagej and len(tif.pages) == 3
        assert tif.imagej_metadata["images"] == 3
        np.testing.assert_array_equal(tif.asarray(), images.read())


def test_raw_with_json_sidecar(tmp_path, real):
    images = _pick(real[0])
    export(tmp_path / "stack.raw", images)
    meta = json.loads((tmp_path / "stack.raw.json").read_text())
    assert meta["shape"] == [3, 1024, 1024] and meta["axis_order"] == "ZYX" and meta["byte_order"] == "little"
    data = np.fromfile(tmp_path / "stack.raw", dtype=np.dtype(meta["dtype"]).newbyteorder("<")).reshape(meta["shape"])
    np.testing.assert_array_equal(data, images.read())
    np.testing.assert_array_equal(open_volume(tmp_path / "stack.raw").read(), images.read())


def test_pdf_report_pages_and_text(tmp_path, real):
    images, labels = _pick(real[0], 2), _pick(real[1], 2)
    metrics = {
        "per_image": [{"name": "images.050", "precision": 0.9, "recall": 0.8, "f1": 0.847, "iou": 0.73}],
        "mean": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "iou": 0.73},
    }
    provenance = {
        "software": {"emviewer": "0.1.0"},
        "model": {"name": "mito-1fm", "sha256": "abc123"},
        "threshold": 0.5,
    }
    export(tmp_path / "report.pdf", images, masks={"mito": labels}, metrics=metrics, provenance=provenance)
    reader = PdfReader(tmp_path / "report.pdf")
    assert len(reader.pages) == 1 + 2  # summary, then one page per slice
    summary = reader.pages[0].extract_text()
    for text in ("mitochondria", "F1", "0.847", "mito-1fm", "abc123", "emviewer"):
        assert text in summary
    assert "images.051" in reader.pages[2].extract_text()
    assert len(reader.pages[1].images) == 2  # raw and overlay side by side


def test_slice_selection_and_float_stack(tmp_path):
    stack = np.random.default_rng(0).random((5, 40, 50)).astype(np.float32)
    export(tmp_path / "sel.tif", from_array(stack), slices=parse_slices("1-2,4", 5))
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "sel.tif"), stack[[1, 2, 4]])
    written = export(tmp_path / "f.png", from_array(stack), slices=[0])
    assert np.asarray(Image.open(written[0])).dtype == np.uint8


def test_bad_requests_write_nothing(tmp_path, real):
    images, labels = _pick(real[0]), _pick(real[1], 2)
    with pytest.raises(InputError, match="shape"):
        export(tmp_path / "x.tif", images, masks={"mito": labels})
    with pytest.raises(InputError, match="extension|cannot export"):
        export(tmp_path / "x.bmp", images)
    with pytest.raises(InputError, match="out of range"):
        parse_slices("0-9", 3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["c.h5", "c.png", "c.tif", "c.raw", "c.pdf"])
def test_cancel_midway_leaves_no_file(tmp_path, real, name):
    images, labels = _pick(real[0]), _pick(real[1])
    token = CancelToken()

    def cancel_after_first(done, total, message):
        if done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        export(tmp_path / name, images, masks={"mito": labels}, progress=cancel_after_first, cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_slice_ranges_must_run_low_to_high_and_repeat_nothing():
    assert parse_slices("3,1-2,2", 5) == [3, 1, 2]
    with pytest.raises(InputError, match="low to high"):
        parse_slices("4-2", 5)


def test_masks_kept_per_slice_export_as_lazy_stacks(tmp_path, real):
    """The app keeps ``{object: {z: mask}}``: exported as the stack's shape, only chosen slices read."""
    images, labels = real
    stack = _pick(images)
    truth = labels[0:3] > 0
    per_slice = {"mito": {1: truth[1], 2: truth[2]}, "nuclei": {0: np.zeros_like(truth[0])}}
    masks = mask_volumes(stack, per_slice, slices=[1, 2])
    assert set(masks) == {"mito"}  # nuclei has no mask on the exported slices
    assert masks["mito"].shape == stack.shape and masks["mito"].dtype == np.uint8
    np.testing.assert_array_equal(masks["mito"].slice(2), truth[2] * 255)
    probabilities = probability_volumes(stack, {"mito": {1: truth[1] * 0.75, 2: truth[2] * 0.75}}, slices=[1, 2])
    written = export(tmp_path / "p.h5", stack, masks, probabilities, slices=[1, 2])
    with h5py.File(written[0]) as f:
        np.testing.assert_array_equal(f["masks/mito"][1], truth[2] * 255)
        np.testing.assert_allclose(f["probabilities/mito"][0], truth[1] * 0.75)


def test_masks_on_some_chosen_slices_only_are_refused_by_name(real):
    images, labels = real
    stack = _pick(images)
    with pytest.raises(InputError, match=r"mitochondria: no mask on slices 0 \(.+\), 2 \(.+\); predict the whole"):
        mask_volumes(stack, {"mito": {1: labels[1] > 0}})


def _with_pixel_size(volume, pixel_size):
    return from_array(volume.read(), volume.source, slice_names=list(volume.slice_names), pixel_size=pixel_size)


def test_png_overlay_has_a_scale_bar_only_with_a_pixel_size(tmp_path, real):
    images, labels = _pick(real[0], 1), _pick(real[1], 1)
    plain = export(tmp_path / "plain.png", images, masks={"mito": labels})[0]
    calibrated = _with_pixel_size(images, (50.0, 10.0, 10.0))
    barred = export(tmp_path / "bar.png", calibrated, masks={"mito": labels})[0]
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(barred))
    changed = np.argwhere(np.any(a != b, axis=-1))
    assert len(changed) > 500  # 10 µm wide: a 2 µm bar of 200 pixels and its label
    assert changed[:, 0].min() > 1024 * 3 // 4 and changed[:, 1].max() < 1024 // 3  # lower-left corner only
    masks = export(tmp_path / "m.png", calibrated, masks={"mito": labels}, content="mask")[0]
    np.testing.assert_array_equal(np.asarray(Image.open(masks)), np.where(labels.slice(0) > 0, 255, 0))  # data: no bar


def test_tiff_carries_the_calibration_and_no_bar(tmp_path, real):
    images = _with_pixel_size(_pick(real[0], 2), (40.0, 8.0, 8.0))
    export(tmp_path / "stack.tif", images)
    with tifffile.TiffFile(tmp_path / "stack.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), images.read())
        page = tif.pages[0]
        x_res = page.tags["XResolution"].value
        assert x_res[0] / x_res[1] == pytest.approx(1000 / 8.0)  # pixels per µm
        assert tif.imagej_metadata["unit"] in ("um", "micron", "µm")
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.04)
    assert open_volume(tmp_path / "stack.tif").pixel_size == pytest.approx((40.0, 8.0, 8.0))


def test_overlay_takes_the_colours_given(tmp_path, real):
    images, labels = _pick(real[0], 1), _pick(real[1], 1)
    path = export(tmp_path / "o.png", images, masks={"mito": labels}, opacity=1.0, colours={"mito": (0, 255, 0)})[0]
    overlay = np.asarray(Image.open(path))
    assert np.all(overlay[labels.slice(0) > 0] == (0, 255, 0))


class _ReadsRecorded:
    """An in-memory ``(Z, Y, X)`` array that records the shape of every read (as a file would serve it)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __getitem__(self, key):
        part = np.asarray(self.array[key])
        self.reads.append(part.shape)
        return part


@pytest.mark.parametrize("suffix", ["tif", "raw"])
def test_tiff_and_raw_overlays_are_rendered_and_written_in_bands(tmp_path, real, monkeypatch, suffix):
    from emviewer.core import export as export_module
    from emviewer.core.overlay import StackRenderer
    from emviewer.core.volume import Volume

    monkeypatch.setattr(export_module, "EXPORT_BAND_ROWS", 100)  # 11 bands a slice, the last of 24 rows
    picked = _pick(real[0], 2)
    data = _ReadsRecorded(picked.read())
    images = Volume(data, "recorded", slice_names=list(picked.slice_names))
    masks = mask_volumes(images, {"mito": {z: real[1].slice(z) > 0 for z in range(2)}})
    out = tmp_path / f"overlay.{suffix}"
    export(out, images, masks=masks, content="overlay")
    renderer = StackRenderer(images, masks)
    expected = np.stack([renderer.overlay(z) for z in range(2)])
    written = tifffile.imread(out) if suffix == "tif" else np.fromfile(out, np.uint8).reshape(expected.shape)
    if suffix == "tif":
        with tifffile.TiffFile(out) as tif:
            assert tif.is_imagej and tif.pages[0].rowsperstrip == 100
    np.testing.assert_array_equal(written, expected)
    data.reads.clear()
    export(tmp_path / f"again.{suffix}", images, masks=masks, content="overlay")
    first_band = data.reads.index((100, 1024))  # reads before it: the contrast sample
    assert data.reads[first_band:] == [(100, 1024)] * 10 + [(24, 1024)] + [(100, 1024)] * 10 + [(24, 1024)]
