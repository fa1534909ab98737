"""The prediction writer streams ``tif``/``h5`` results to disk: the same files as collecting the
slices and writing them at the end, nothing left behind by an abandoned run, and memory that
does not grow with the number of slices.

The results are built directly as :class:`SliceResult` s (no model): probabilities derived from
real SBEM slices, so masks and probabilities look like a prediction's.
"""

from __future__ import annotations

import gc
import math
import tracemalloc

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.io import open_volume
from emviewer.core.io.hdf5 import write_hdf5
from emviewer.core.io.tiff import write_tiff
from emviewer.core.overlay import mask_image
from emviewer.core.predict import SliceResult
from emviewer.core.prediction_output import PredictionWriter, write_predictions
from emviewer.core.progress import Cancelled
from emviewer.core.volume import from_array

OBJECTS = ["mito", "membrane"]
PROVENANCE = {"command": "predict", "mode": "fast", "models": {"mito": ["mito-a"]}, "tta": 1}


@pytest.fixture
def raw(cdeep3m):
    """Five real SBEM slices (images.010-014) cropped to 72 x 90, uint8, (Z, Y, X)."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-4].png"))
    return np.stack([np.asarray(Image.open(f))[:72, :90] for f in files])


def _results(raw: np.ndarray) -> list[SliceResult]:
    """One result per slice: dark pixels as 'mito', bright ones as 'membrane' (float32 in [0, 1])."""
    p = raw.astype(np.float32) / 255
    return [SliceResult(z, f"images.{10 + z:03d}", {"mito": 1 - p[z], "membrane": p[z]}) for z in range(len(raw))]


def _collected(results: list[SliceResult], pixel_size) -> tuple[dict, dict]:
    """The stacks the old writer built at the end: masks uint8 0/255, probabilities float32."""
    names = {"slice_names": [r.name for r in results], "pixel_size": pixel_size}
    masks = {o: from_array(np.stack([mask_image(r.masks()[o]) for r in results]), **names) for o in OBJECTS}
    probs = {o: from_array(np.stack([r.probabilities[o] for r in results]), **names) for o in OBJECTS}
    return masks, probs


def _h5_contents(path) -> dict:
    """Every dataset (values, dtype, chunks, compression, attributes) and the root attributes."""
    with h5py.File(path, "r") as h5:
        found = {"/": dict(h5.attrs)}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                found[name] = (obj[()], obj.dtype, obj.chunks, obj.compression, obj.compression_opts, dict(obj.attrs))

        h5.visititems(visit)
    return found


def _assert_same_h5(new, old) -> None:
    a, b = _h5_contents(new), _h5_contents(old)
    assert a.keys() == b.keys()
    assert a["/"] == b["/"]
    for name in set(a) - {"/"}:
        (values, dtype, *layout, attrs), (values_old, dtype_old, *layout_old, attrs_old) = a[name], b[name]
        assert dtype == dtype_old and layout == layout_old, name
        np.testing.assert_array_equal(values, values_old)
        assert attrs.keys() == attrs_old.keys(), name
        for key in attrs:
            np.testing.assert_array_equal(attrs[key], attrs_old[key])  # NaN z compares equal here


@pytest.mark.parametrize(
    "raw_pixel_size, pixel_size",
    [((30.0, 5.0, 5.0), (30.0, 5.0, 5.0)), (None, (None, 4.0, 6.0)), ((29.0, 6.0, 6.0), None), (None, None)],
)
def test_streamed_hdf5_equals_collected(tmp_path, raw, raw_pixel_size, pixel_size):
    results = _results(raw)
    volume = from_array(raw, pixel_size=raw_pixel_size)
    writer = PredictionWriter(tmp_path / "new", OBJECTS, "h5", True, PROVENANCE, pixel_size)
    assert write_predictions(iter(results), writer, raw=volume) == [tmp_path / "new" / "prediction.h5"]

    masks, probs = _collected(results, pixel_size)
    write_hdf5(tmp_path / "old.h5", raw=volume, masks=masks, probabilities=probs, provenance=PROVENANCE)
    _assert_same_h5(tmp_path / "new" / "prediction.h5", tmp_path / "old.h5")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["prediction.h5"]  # no temporary file left
    with open_volume(f"{tmp_path / 'new' / 'prediction.h5'}:/probabilities/mito") as read:
        assert read.dtype == np.float32 and read.pixel_size == (raw_pixel_size or pixel_size)
        np.testing.assert_array_equal(read.read(), probs["mito"].read())


def test_streamed_hdf5_without_probabilities_or_raw(tmp_path, raw):
    results = _results(raw)[:2]
    writer = PredictionWriter(tmp_path, ["mito"], "h5", provenance=None, pixel_size=(30.0, 5.0, 5.0))
    write_predictions(results, writer)
    with h5py.File(tmp_path / "prediction.h5", "r") as h5:
        assert list(h5) == ["masks"] and list(h5["masks"]) == ["mito"] and not dict(h5.attrs)
        assert set(np.unique(h5["masks/mito"][()])) <= {0, 255}


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("pixel_size", [(30.0, 5.0, 5.0), (None, 4.0, 6.0), None])
def test_streamed_tiff_equals_collected(tmp_path, raw, n, pixel_size):
    results = _results(raw)[:n]
    writer = PredictionWriter(tmp_path / "new", OBJECTS, "tif", True, PROVENANCE, pixel_size)
    written = write_predictions(results, writer)
    names = ["mito.tif", "membrane.tif", "mito_probabilities.tif", "membrane_probabilities.tif"]
    assert written == [tmp_path / "new" / name for name in names]
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == sorted(names)

    masks, probs = _collected(results, pixel_size)
    old = {f"{o}.tif": v for o, v in masks.items()} | {f"{o}_probabilities.tif": v for o, v in probs.items()}
    for name, stack in old.items():
        write_tiff(tmp_path / name, stack.iter_slices(), stack.shape, stack.dtype, pixel_size=pixel_size)
        with tifffile.TiffFile(tmp_path / "new" / name) as new_tif, tifffile.TiffFile(tmp_path / name) as old_tif:
            assert new_tif.is_imagej and not new_tif.is_bigtiff and new_tif.imagej_metadata == old_tif.imagej_metadata
            assert len(new_tif.pages) == len(old_tif.pages) == n
            for new_page, old_page in zip(new_tif.pages, old_tif.pages, strict=True):
                assert _tags(new_page) == _tags(old_page)
            np.testing.assert_array_equal(new_tif.asarray(), old_tif.asarray())
        with open_volume(tmp_path / "new" / name) as new, open_volume(tmp_path / name) as expected:
            assert (new.shape, new.dtype, new.pixel_size, new.slice_names) == (
                expected.shape,
                expected.dtype,
                expected.pixel_size,
                [name[:-4]] if n == 1 else expected.slice_names,  # one page: named after its file
            )
            np.testing.assert_array_equal(new.read(), stack.read())


def _tags(page) -> dict:
    """A page's tags but where its pixels start and the description (padded differently)."""
    return {t.name: t.value for t in page.tags.values() if t.name not in ("StripOffsets", "ImageDescription")}


def _cancelled_after(results: list[SliceResult], n: int):
    yield from results[:n]
    raise Cancelled("cancelled by the user")


@pytest.mark.parametrize("fmt", ["tif", "h5"])
def test_cancelled_run_leaves_no_file_and_keeps_an_earlier_one(tmp_path, raw, fmt):
    earlier = tmp_path / ("prediction.h5" if fmt == "h5" else "mito.tif")
    earlier.write_bytes(b"an earlier result")
    writer = PredictionWriter(tmp_path, OBJECTS, fmt, True, PROVENANCE, (30.0, 5.0, 5.0))
    with pytest.raises(Cancelled):
        write_predictions(_cancelled_after(_results(raw), 3), writer, raw=from_array(raw))
    assert list(tmp_path.iterdir()) == [earlier] and earlier.read_bytes() == b"an earlier result"
    assert writer.written == []
    writer.abort()  # twice is harmless


def test_abort_deletes_the_partial_files(tmp_path, raw):
    writer = PredictionWriter(tmp_path / "out", OBJECTS, "tif", True)
    for result in _results(raw)[:2]:
        writer.add(result)
    assert len(list((tmp_path / "out").iterdir())) == 4  # being written, under temporary names
    writer.abort()
    assert list((tmp_path / "out").iterdir()) == []
    assert writer.finish() == []


def test_cancelled_png_run_keeps_finished_slices(tmp_path, raw):
    writer = PredictionWriter(tmp_path, ["mito"], "png")
    with pytest.raises(Cancelled):
        write_predictions(_cancelled_after(_results(raw), 2), writer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.010.png", "images.011.png"]


def test_slices_of_another_size_are_refused_and_nothing_is_left(tmp_path, raw):
    results = _results(raw)[:2] + _results(raw[:, :40])[2:3]
    with pytest.raises(ValueError, match="images.012 is 40 x 90 pixels, the earlier ones 72 x 90"):
        write_predictions(results, PredictionWriter(tmp_path, OBJECTS, "h5", True))
    assert list(tmp_path.iterdir()) == []


def test_no_slice_writes_no_file(tmp_path):
    assert write_predictions([], PredictionWriter(tmp_path / "out", OBJECTS, "h5", True)) == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _synthetic(n: int, side: int):
    """``n`` results of ``side``² for two objects, made one at a time (the stream keeps none)."""
    rng = np.random.default_rng(0)
    for z in range(n):
        yield SliceResult(z, f"slice_{z:04d}", {o: rng.random((side, side), dtype=np.float32) for o in OBJECTS})


def _peak_bytes(tmp_path, fmt: str, n: int, side: int) -> int:
    """Peak traced memory while ``n`` slices are written (files go to a folder of their own)."""
    gc.collect()
    tracemalloc.start()
    try:
        write_predictions(_synthetic(n, side), PredictionWriter(tmp_path / f"{fmt}{n}", OBJECTS, fmt, True, PROVENANCE))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["tif", "h5"])
def test_memory_does_not_grow_with_the_number_of_slices(tmp_path, fmt):
    side = 256
    per_slice = side * side * (1 + 4) * len(OBJECTS)  # a mask (uint8) and a probability (float32) per object
    few, many = _peak_bytes(tmp_path, fmt, 5, side), _peak_bytes(tmp_path, fmt, 40, side)
    assert many - few < per_slice, f"peak grew by {(many - few) / per_slice:.1f} slices' worth from 5 to 40 slices"
    written = f"{tmp_path / 'h540' / 'prediction.h5'}:/masks/mito" if fmt == "h5" else tmp_path / "tif40" / "mito.tif"
    with open_volume(written) as v:
        assert v.shape == (40, side, side) and math.isclose(v.read().mean() / 255, 0.5, abs_tol=0.01)


@pytest.mark.parametrize("fmt", ["h5", "tif", "png"])
def test_slices_in_bands_of_rows_write_the_same_files(tmp_path, raw, fmt):
    """A huge slice comes as bands of rows (core.bands): h5 writes each band in place, tif and
    png join them; the files equal those of whole slices, byte for byte in their data."""
    from emviewer.core.bands import BandResult

    whole = _results(raw)
    banded = [
        BandResult(r.index, r.name, start, {o: p[start : start + 32] for o, p in r.probabilities.items()}, 72)
        for r in whole
        for start in (0, 32, 64)
    ]
    for name, stream in (("whole", whole), ("banded", banded)):
        write_predictions(stream, PredictionWriter(tmp_path / name, OBJECTS, fmt, probabilities=True))
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*.*"))
    assert files == sorted(p.relative_to(tmp_path / "banded") for p in (tmp_path / "banded").rglob("*.*"))
    for f in files:
        if fmt == "h5":
            with h5py.File(tmp_path / "whole" / f) as a, h5py.File(tmp_path / "banded" / f) as b:
                for key in ("masks/mito", "masks/membrane", "probabilities/mito", "probabilities/membrane"):
                    np.testing.assert_array_equal(a[key][:], b[key][:])
        else:
            read = tifffile.imread if fmt == "tif" else (lambda path: np.asarray(Image.open(path)))
            np.testing.assert_array_equal(read(tmp_path / "whole" / f), read(tmp_path / "banded" / f))
