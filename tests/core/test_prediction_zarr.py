"""OME-Zarr prediction stores: pyramid, metadata read by ome-zarr-py, resume and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emviewer.core.bands import BandResult
from emviewer.core.errors import InputError
from emviewer.core.io import open_volume
from emviewer.core.predict import SliceResult
from emviewer.core.prediction_zarr import DONE_FOLDER, PredictionStore, downsample, pyramid_shapes

SHAPE = (3, 2100, 1500)  # three levels: 2100 x 1500, 1050 x 750, 525 x 375
PIXEL = (40.0, 8.0, 8.0)


def _probability(z: int) -> np.ndarray:
    """A smooth field of blobs, different on each slice, float32 in [0, 1]."""
    y, x = np.mgrid[: SHAPE[1], : SHAPE[2]].astype(np.float32)
    return (0.5 + 0.5 * np.sin(y / (37 + 5 * z)) * np.cos(x / 53)).astype(np.float32)


def _result(z: int) -> SliceResult:
    return SliceResult(z, f"slice_{z:04d}", {"mito": _probability(z)})


def _store(path, resume=False, **record) -> PredictionStore:
    record = {"models": {"mito": ["tiny"]}, "mode": "fast", "tta": 1, **record}
    return PredictionStore(path, ["mito"], SHAPE, True, record, PIXEL, resume=resume)


def test_pyramid_halves_until_it_fits_an_overview():
    assert pyramid_shapes(SHAPE) == [(3, 2100, 1500), (3, 1050, 750), (3, 525, 375)]
    assert pyramid_shapes((1, 1024, 10)) == [(1, 1024, 10)]
    assert pyramid_shapes((2, 16000, 10000))[-1] == (2, 1000, 625)


def test_downsampling_keeps_thin_objects_and_does_not_darken_an_odd_border():
    mask = np.zeros((5, 5), np.uint8)
    mask[:, 2] = 255  # a one-pixel membrane
    assert downsample(mask, "mask")[:, 1].tolist() == [255, 255, 255]
    flat = np.full((5, 5), 0.8, np.float32)
    np.testing.assert_allclose(downsample(flat, "probability"), 0.8)


def test_store_is_an_ome_zarr_pyramid_that_ome_zarr_py_reads(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    store = _store(tmp_path / "out.zarr")
    for z in range(SHAPE[0]):
        store.add(_result(z))
    assert store.finish() == [tmp_path / "out.zarr"]
    (node,) = list(Reader(parse_url(str(tmp_path / "out.zarr" / "mito")))())
    assert [level.shape for level in node.data] == pyramid_shapes(SHAPE)
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [[40.0, 8.0, 8.0], [40.0, 16.0, 16.0], [40.0, 32.0, 32.0]]
    full, half = (np.asarray(level) for level in node.data[:2])
    np.testing.assert_array_equal(full[1], np.where(_probability(1) >= 0.5, 255, 0))
    np.testing.assert_array_equal(half[1], downsample(full[1], "mask"))
    assert set(np.unique(half)) <= {0, 255}
    probabilities = open_volume(f"{tmp_path / 'out.zarr'}:mito_probabilities/0")
    np.testing.assert_array_equal(probabilities.slice(2), _probability(2))
    assert probabilities.pixel_size == PIXEL
    record = json.loads((tmp_path / "out.zarr" / ".zattrs").read_text())["emviewer"]
    assert record["complete"] and record["models"] == {"mito": ["tiny"]} and record["shape"] == list(SHAPE)


def test_a_stopped_store_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "out.zarr"
    first = _store(path)
    first.add(_result(0))
    first.add(_result(2))
    first.abort()  # stopped: the two slices stay
    with pytest.raises(InputError, match="unfinished prediction: add --resume"):
        _store(path)
    resumed = _store(path, resume=True)
    assert resumed.done == {0, 2}
    resumed.finish()
    assert not json.loads((path / ".zattrs").read_text())["emviewer"]["complete"]  # slice 1 missing
    resumed.add(_result(1))
    resumed.finish()
    assert json.loads((path / ".zattrs").read_text())["emviewer"]["complete"]
    assert sorted(int(p.name) for p in (path / DONE_FOLDER).iterdir()) == [0, 1, 2]
    again = _store(path)  # a finished store of ours is replaced by a new run
    assert again.done == set()


@pytest.mark.parametrize(
    ("change", "message"),
    [({"mode": "accurate"}, "mode"), ({"models": {"mito": ["other"]}}, "models"), ({"tta": 16}, "tta")],
)
def test_resume_refuses_a_store_of_another_run(tmp_path, change, message):
    _store(tmp_path / "out.zarr").add(_result(0))
    with pytest.raises(InputError, match=f"different run \\({message}"):
        _store(tmp_path / "out.zarr", resume=True, **change)


def test_a_path_that_is_not_our_store_is_never_written(tmp_path):
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / ".zattrs").write_text('{"multiscales": []}')  # someone's own store
    with pytest.raises(InputError, match="not an EMViewer prediction store"):
        _store(folder)
    with pytest.raises(InputError, match="nothing to resume"):
        _store(tmp_path / "absent.zarr", resume=True)
    assert sorted(p.name for p in folder.iterdir()) == [".zattrs"]


def test_resume_refuses_an_array_changed_since(tmp_path):
    path = tmp_path / "out.zarr"
    _store(path).add(_result(0))
    meta = json.loads((path / "mito" / "1" / ".zarray").read_text())
    meta["compressor"] = {"id": "pickle"}
    (path / "mito" / "1" / ".zarray").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="cannot be resumed"):
        _store(path, resume=True)


def test_any_pyramid_level_opens_as_a_stack_with_its_pixel_size(tmp_path):
    store = _store(tmp_path / "out.zarr")
    store.add(_result(0))
    half = open_volume(f"{tmp_path / 'out.zarr'}:mito/level=1")
    assert half.shape == (3, 1050, 750) and half.pixel_size == (40.0, 16.0, 16.0)
    np.testing.assert_array_equal(half.slice(0), downsample(np.where(_probability(0) >= 0.5, 255, 0), "mask"))
    with pytest.raises(InputError, match="has no level 3 \\(it has 3 levels\\)"):
        open_volume(f"{tmp_path / 'out.zarr'}:mito_probabilities/level=3")
    with pytest.raises(InputError, match="several images"):
        open_volume(f"{tmp_path / 'out.zarr'}:level=1")


def test_bands_of_rows_make_the_same_store_and_mark_a_slice_done_after_its_last(tmp_path):
    """A huge slice arrives as bands of 1024 rows (core.bands): every level equals the store of
    whole slices, bit for bit (2100 rows: bands of 1024, 1024 and 52; odd rows at level 2)."""
    import zarr

    whole, banded = _store(tmp_path / "whole.zarr"), _store(tmp_path / "banded.zarr")
    for z in range(SHAPE[0]):
        whole.add(_result(z))
        probability = _probability(z)
        starts = range(0, SHAPE[1], 1024)
        for start in starts:
            rows = {"mito": probability[start : start + 1024]}
            banded.add(BandResult(z, f"slice_{z:04d}", start, rows, SHAPE[1]))
            assert (z in banded.marked_done()) == (start == starts[-1])
    for name in ("mito", "mito_probabilities"):
        for level in range(len(pyramid_shapes(SHAPE))):
            a = zarr.open_array(str(tmp_path / "whole.zarr" / name / str(level)), mode="r")[:]
            b = zarr.open_array(str(tmp_path / "banded.zarr" / name / str(level)), mode="r")[:]
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="halved"):
        banded.add(BandResult(0, "slice_0000", 1022, {"mito": _probability(0)[1022:]}, SHAPE[1]))
