"""Zarr, OME-Zarr and N5 on real SBEM crops: layouts, axis names, voxel size, the OME-Zarr writer,
and crafted stores that try to run code or read outside themselves.

Stores are written at test time with zarr (formats 2 and 3, folder and zip) and N5 containers
with tensorstore, the way napari, ome-zarr-py, neuroglancer and BigDataViewer users have them.
OME-Zarr metadata is written by hand with zarr, following NGFF 0.4 / 0.5 (ome-zarr-py is not
in the environment: it would downgrade pydantic). Hostile stores are written by hand: no
honest writer makes them.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorstore
import zarr
from PIL import Image

from emviewer.core.errors import ImageContentError, InputError, UnreadableFileError
from emviewer.core.io import ReadOptions, open_volume
from emviewer.core.io.ome_zarr import write_ome_zarr


@pytest.fixture
def stack(cdeep3m):
    """Three real SBEM slices (images.010-012) cropped to 128 x 96, uint8, (Z, Y, X)."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-2].png"))
    return np.stack([np.asarray(Image.open(f))[:128, :96] for f in files])


def _ngff(axes: str, scale, units=None, version="0.4", extra=None) -> dict:
    image = {
        "version": version,
        "axes": [{"name": a, **({"unit": units[i]} if units and units[i] else {})} for i, a in enumerate(axes)],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}],
    }
    image.update(extra or {})
    return {"multiscales": [image]} if version != "0.5" else {"ome": {"version": "0.5", "multiscales": [image]}}


def _ome_store(path: Path, data: np.ndarray, attrs: dict, zarr_format: int = 2) -> Path:
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.attrs.update(attrs)
    root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=data.shape)[:] = data
    return path


# ----------------------------------------------------------------------------- plain Zarr


def test_zarr_array_and_ome_zarr_level0(tmp_path, stack):
    plain = tmp_path / "plain.zarr"
    zarr.create_array(str(plain), shape=stack.shape, dtype=stack.dtype, chunks=(1, 64, 64))[:] = stack
    with open_volume(plain) as volume:
        np.testing.assert_array_equal(volume.slice(2), stack[2])
        assert volume.metadata["axes"] == "ZYX" and volume.pixel_size is None

    ome = tmp_path / "image.ome.zarr"
    root = zarr.open_group(str(ome), mode="w")
    root.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": a} for a in "tczyx"], "datasets": [{"path": "0"}, {"path": "1"}]}
    ]
    root.create_array("0", shape=(1, 1) + stack.shape, dtype=stack.dtype, chunks=(1, 1, 1, 64, 64))[:] = stack[
        None, None
    ]
    root.create_array("1", shape=(1, 1, 3, 64, 48), dtype=stack.dtype)[:] = stack[None, None, :, ::2, ::2]
    with open_volume(ome) as volume:
        assert volume.shape == stack.shape and volume.metadata["axes"] == "TCZYX"
        np.testing.assert_array_equal(volume.slice(1), stack[1])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zip_store_and_big_endian_v2(tmp_path, stack, zarr_format):
    path = tmp_path / "stack.zarr.zip"
    store = zarr.storage.ZipStore(path, mode="w")
    dtype = ">u2" if zarr_format == 2 else "uint16"
    zarr.create_array(store, shape=stack.shape, dtype=dtype, chunks=(1, 64, 64), zarr_format=zarr_format)[:] = (
        stack.astype(dtype) * 257
    )
    store.close()
    with open_volume(path) as volume:
        np.testing.assert_array_equal(volume[0:3], stack.astype(np.uint16) * 257)


def test_one_of_several_arrays_by_name_and_errors_name_the_store(tmp_path, stack):
    path = tmp_path / "two.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array("raw", shape=stack.shape, dtype=stack.dtype)[:] = stack
    root.create_group("seg").create_array("mito", shape=stack.shape, dtype=np.uint8)[:] = stack > 128
    with pytest.raises(
        InputError, match=r"two\.zarr: the store holds several images \(raw, seg/mito\); choose one as two\.zarr:raw"
    ):
        open_volume(path)
    with open_volume(f"{path}:/seg/mito") as volume:
        assert volume.source == f"{path}:seg/mito"
        np.testing.assert_array_equal(volume[1], stack[1] > 128)
    with pytest.raises(InputError, match=r"two\.zarr: no array 'nope' in the store \(it has: raw, seg/mito\)"):
        open_volume(f"{path}:nope")


# ----------------------------------------------------------------------------- layouts


def test_trailing_singleton_channel_is_one_slice_not_columns(tmp_path, stack):
    path = tmp_path / "yxc.zarr"  # ilastik-style (Y, X, 1): once read as 128 slices of 96 x 1
    zarr.create_array(str(path), shape=stack.shape[1:] + (1,), dtype=stack.dtype)[:] = stack[0][..., None]
    with open_volume(path) as volume:
        assert volume.shape == (1, 128, 96) and volume.metadata["axes"] == "YXC"
        np.testing.assert_array_equal(volume.slice(0), stack[0])


def test_several_channels_need_a_choice(tmp_path, stack):
    path = tmp_path / "zyxc.zarr"
    zarr.create_array(str(path), shape=stack.shape + (2,), dtype=stack.dtype)[:] = np.stack(
        [stack, 255 - stack], axis=-1
    )
    with pytest.raises(InputError, match=r"zyxc\.zarr: has 2 channels \(axes ZYXC.*--channel N"):
        open_volume(path)
    with open_volume(path, ReadOptions(channel=1)) as volume:
        np.testing.assert_array_equal(volume[0:3], 255 - stack)


def test_axes_from_ngff_v3_dimension_names_and_the_override(tmp_path, stack):
    czyx = np.stack([stack, stack // 2])
    ome = _ome_store(tmp_path / "czyx.ome.zarr", czyx, _ngff("czyx", [1, 30, 6, 6]))
    with open_volume(ome, ReadOptions(channel=1)) as volume:
        assert volume.metadata["axes"] == "CZYX"
        np.testing.assert_array_equal(volume[0:3], stack // 2)
    plain = tmp_path / "guess.zarr"  # nothing named: (2, Y, X) is guessed as two slices...
    zarr.create_array(str(plain), shape=(2, 128, 96), dtype=stack.dtype)[:] = stack[:2]
    with open_volume(plain) as volume:
        assert volume.shape == (2, 128, 96)
    with open_volume(plain, ReadOptions(axes="CYX", channel=1)) as volume:  # ...unless the user says otherwise
        assert volume.shape == (1, 128, 96)
        np.testing.assert_array_equal(volume[0], stack[1])
    named = tmp_path / "named.zarr"  # ...or v3 dimension_names name the first axis
    zarr.create_array(str(named), shape=(2, 128, 96), dtype=stack.dtype, dimension_names=["c", "y", "x"])[:] = stack[:2]
    with pytest.raises(InputError, match=r"named\.zarr: has 2 channels \(axes CYX"):
        open_volume(named)


def test_time_series_is_refused_with_its_axes(tmp_path, stack):
    tczyx = np.stack([stack[None], stack[None]])
    ome = _ome_store(tmp_path / "movie.ome.zarr", tczyx, _ngff("tczyx", [1, 1, 30, 6, 6]))
    with pytest.raises(InputError, match=r"movie\.ome\.zarr:0: holds a .*T=2, Z=3"):
        open_volume(ome)


# ----------------------------------------------------------------------------- pixel size


@pytest.mark.parametrize(
    ("units", "scale", "expected"),
    [
        (["micrometer"] * 3, [0.05, 0.007, 0.007], (50.0, 7.0, 7.0)),
        (["angstrom", "nanometer", "nanometer"], [500, 7, 7], (50.0, 7.0, 7.0)),
        ([None, "nanometer", "nanometer"], [1, 7, 7], (None, 7.0, 7.0)),
        (None, [50, 7, 7], None),  # no units: a scale alone is no calibration
    ],
)
def test_pixel_size_from_ngff_04(tmp_path, stack, units, scale, expected):
    ome = _ome_store(tmp_path / "cal.ome.zarr", stack, _ngff("zyx", scale, units))
    with open_volume(ome) as volume:
        assert volume.pixel_size == expected
        assert volume.metadata.get("pixel_size_from") == ("OME-Zarr coordinateTransformations" if expected else None)


def test_pixel_size_from_ngff_05_with_a_multiscale_transform(tmp_path, stack):
    overall = {"coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]}
    attrs = _ngff("zyx", [0.025, 0.0035, 0.0035], ["micrometer"] * 3, version="0.5", extra=overall)
    ome = _ome_store(tmp_path / "v05.ome.zarr", stack, attrs, zarr_format=3)
    with open_volume(ome) as volume:
        assert volume.pixel_size == (50.0, 3.5, 3.5) and volume.metadata["ngff_version"] == "0.5"
        np.testing.assert_array_equal(volume[2], stack[2])


def test_ngff_2d_image_has_no_z_size(tmp_path, stack):
    ome = _ome_store(tmp_path / "slice.ome.zarr", stack[0], _ngff("yx", [0.004, 0.004], ["micrometer"] * 2))
    with open_volume(ome) as volume:
        assert volume.shape == (1, 128, 96) and volume.pixel_size == (None, 4.0, 4.0)


# ----------------------------------------------------------------------------- OME-Zarr writer


def test_ome_zarr_round_trip_with_labels_and_probabilities(tmp_path, stack):
    out = tmp_path / "out.zarr"
    masks = ((stack > 128) * 255).astype(np.uint8)
    probabilities = stack.astype(np.float32) / 255
    write_ome_zarr(
        out,
        iter(stack),
        stack.shape,
        stack.dtype,
        (50.0, 7.0, 7.0),
        extra_arrays={"mito": masks, "mito_probability": probabilities},
    )
    assert json.loads((out / "0" / ".zarray").read_text())["chunks"] == [1, 128, 96]
    assert json.loads((out / "labels" / ".zattrs").read_text())["labels"] == ["mito"]
    with open_volume(out) as volume:
        assert volume.pixel_size == (50.0, 7.0, 7.0) and volume.dtype == np.uint8
        np.testing.assert_array_equal(volume[0:3], stack)
    with open_volume(f"{out}:labels/mito") as volume:
        np.testing.assert_array_equal(volume[0:3], masks)
    with open_volume(f"{out}:mito_probability") as volume:
        assert volume.dtype == np.float32 and volume.pixel_size == (50.0, 7.0, 7.0)
        np.testing.assert_array_equal(volume[0:3], probabilities)


def test_ome_zarr_without_calibration_reads_back_without_one(tmp_path, stack):
    out = tmp_path / "plain.ome.zarr"
    write_ome_zarr(out, (s.astype(np.uint16) for s in stack), stack.shape, np.uint16, None)
    with open_volume(out) as volume:
        assert volume.pixel_size is None and volume.dtype == np.uint16
    write_ome_zarr(out, iter(stack), stack.shape, stack.dtype, (None, 7.0, 7.0))  # replaces the store
    with open_volume(out) as volume:
        assert volume.pixel_size == (None, 7.0, 7.0) and volume.dtype == np.uint8


def test_ome_zarr_writer_is_atomic(tmp_path, stack):
    out = tmp_path / "out.zarr"
    write_ome_zarr(out, iter(stack), stack.shape, stack.dtype, (50.0, 7.0, 7.0))

    def failing():
        yield stack[0]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_ome_zarr(out, failing(), stack.shape, stack.dtype, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]  # no temporary left behind
    with open_volume(out) as volume:  # the old store is untouched
        assert volume.pixel_size == (50.0, 7.0, 7.0)
        np.testing.assert_array_equal(volume[2], stack[2])
    precious = tmp_path / "notes.zarr"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(InputError, match=r"notes\.zarr: exists and is not a Zarr store"):
        write_ome_zarr(precious, iter(stack), stack.shape, stack.dtype, None)
    assert (precious / "thesis.txt").read_text() == "do not delete"


# ----------------------------------------------------------------------------- N5


def _tensorstore_n5(path: Path, data: np.ndarray, compression: dict, block=(2, 64, 64)) -> None:
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "dimensions": list(data.shape[::-1]),
            "blockSize": list(block[::-1]),
            "dataType": str(data.dtype),
            "compression": compression,
        },
    }
    store = tensorstore.open(spec, create=True, delete_existing=True).result()
    store[...] = data.transpose()  # N5 and tensorstore's N5 driver index X first


@pytest.mark.parametrize(
    "compression",
    [{"type": "raw"}, {"type": "gzip"}, {"type": "gzip", "useZlib": True}, {"type": "bzip2"}, {"type": "xz"},
     {"type": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 2}, {"type": "zstd"}],
)  # fmt: skip
def test_n5_from_tensorstore_every_compression(tmp_path, stack, compression):
    data = stack.astype(np.int16) * 100 - 12000  # big-endian on disk, signed
    _tensorstore_n5(tmp_path / "em.n5" / "raw", data, compression)
    with open_volume(tmp_path / "em.n5") as volume:  # the container's only dataset
        assert volume.dtype == np.int16 and volume.shape == stack.shape and volume.source.endswith("em.n5:raw")
        np.testing.assert_array_equal(volume[0:3], data)
        np.testing.assert_array_equal(volume[1, 70:, 50:90:3], data[1, 70:, 50:90:3])


def test_n5_multiscale_group_and_pixel_resolution(tmp_path, stack):
    container = tmp_path / "bdv.n5"
    _tensorstore_n5(container / "setup0" / "s0", stack, {"type": "gzip"})
    _tensorstore_n5(container / "setup0" / "s1", stack[:, ::2, ::2], {"type": "gzip"})
    (container / "attributes.json").write_text(json.dumps({"n5": "2.5.1"}))
    (container / "setup0" / "attributes.json").write_text(
        json.dumps({"pixelResolution": {"dimensions": [0.007, 0.007, 0.05], "unit": "um"}})
    )
    with open_volume(container) as volume:
        assert volume.source.endswith("bdv.n5:setup0/s0") and volume.pixel_size == (50.0, 7.0, 7.0)
        assert volume.metadata["pixel_size_from"] == "N5 pixelResolution"
        np.testing.assert_array_equal(volume[2], stack[2])
    renamed = container.rename(tmp_path / "from_fiji")  # no .n5 suffix: the root attributes say N5
    with open_volume(renamed / "setup0" / "s1") as volume:  # a dataset folder opened by itself
        np.testing.assert_array_equal(volume[1], stack[1, ::2, ::2])


def test_n5_reads_back_exactly_through_export_raw(tmp_path, stack, run_cli):
    data = stack.astype(np.uint16) * 200
    _tensorstore_n5(tmp_path / "em.n5" / "raw", data, {"type": "zstd"})
    code, _, err = run_cli("export", tmp_path / "em.n5", "-o", tmp_path / "out.raw")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out.raw.json").read_text())
    out = np.fromfile(tmp_path / "out.raw", dtype=sidecar["dtype"]).reshape(sidecar["shape"])
    np.testing.assert_array_equal(out, data)


def test_n5_written_by_hand_with_axes_and_resolution(tmp_path, stack):
    """A two-channel dataset written from the N5 spec: axes and resolution X first, edge blocks clipped."""
    data = np.stack([stack, 255 - stack]).astype(np.uint16)  # (C, Z, Y, X)
    ds = tmp_path / "paintera.n5" / "raw"
    ds.mkdir(parents=True)
    (ds.parent / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    attrs = {"dimensions": [96, 128, 3, 2], "blockSize": [64, 64, 2, 1], "dataType": "uint16",
             "compression": {"type": "raw"}, "axes": ["x", "y", "z", "c"],
             "resolution": [7.0, 7.0, 50.0, 1.0]}  # fmt: skip
    (ds / "attributes.json").write_text(json.dumps(attrs))
    for c in range(2):
        for z0 in range(0, 3, 2):
            for y0 in range(0, 128, 64):
                for x0 in range(0, 96, 64):
                    block = data[c, z0 : z0 + 2, y0 : y0 + 64, x0 : x0 + 64]
                    header = np.array([0, 4], ">u2").tobytes() + np.array(block.shape[::-1] + (1,), ">u4").tobytes()
                    name = ds / str(x0 // 64) / str(y0 // 64) / str(z0 // 2) / str(c)
                    name.parent.mkdir(parents=True, exist_ok=True)
                    name.write_bytes(header + block.astype(">u2").tobytes())
    with pytest.raises(InputError, match=r"paintera\.n5:raw: has 2 channels \(axes CZYX"):
        open_volume(tmp_path / "paintera.n5")
    with open_volume(tmp_path / "paintera.n5", ReadOptions(channel=1)) as volume:
        assert volume.pixel_size == (50.0, 7.0, 7.0) and "no unit given" in volume.metadata["pixel_size_from"]
        np.testing.assert_array_equal(volume[0:3], data[1])


def test_n5_refusals_name_the_container(tmp_path, stack):
    _tensorstore_n5(tmp_path / "a.n5" / "raw", stack, {"type": "gzip"})
    attrs_file = tmp_path / "a.n5" / "raw" / "attributes.json"
    attrs = json.loads(attrs_file.read_text())
    attrs_file.write_text(json.dumps({**attrs, "compression": {"type": "lz4", "blockSize": 65536}}))
    with pytest.raises(UnreadableFileError, match=r"a\.n5: N5 dataset raw uses lz4 compression.*re-save it"):
        open_volume(tmp_path / "a.n5")
    attrs_file.write_text(json.dumps(attrs))
    block = tmp_path / "a.n5" / "raw" / "0" / "0" / "1"
    block.write_bytes(np.array([0, 3], ">u2").tobytes() + np.array([64, 64, 1], ">u4").tobytes() + b"not gzip")
    with open_volume(tmp_path / "a.n5") as volume:
        np.testing.assert_array_equal(volume[0], stack[0])
        with pytest.raises(UnreadableFileError, match=r"a\.n5:raw: N5 block raw/0/0/1 could not be decompressed"):
            volume[2]
        block.write_bytes(np.array([0, 3], ">u2").tobytes() + np.array([64, 64, 2**20], ">u4").tobytes())
        with pytest.raises(UnreadableFileError, match=r"a\.n5:raw: N5 block raw/0/0/1 claims size \(64, 64, 1048576\)"):
            volume[2]
        outside = tmp_path / "private.bin"
        os.replace(tmp_path / "a.n5" / "raw" / "0" / "0" / "0", outside)  # a valid block, outside the container
        (tmp_path / "a.n5" / "raw" / "0" / "0" / "0").symlink_to(outside)
        with pytest.raises(UnreadableFileError, match=r"a\.n5: raw/0/0/0 is a symbolic link leading outside the store"):
            volume[0]


# ----------------------------------------------------------------------------- hostile stores


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted_v2(path: Path, **meta) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    base = {
        "zarr_format": 2,
        "shape": [2, 8, 8],
        "chunks": [1, 8, 8],
        "dtype": "|u1",
        "compressor": None,
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }
    (path / ".zarray").write_text(json.dumps({**base, **meta}))
    return path


def test_pickle_in_a_store_is_refused_before_zarr_opens_it(tmp_path):
    """With zarr 2 + numcodecs < 0.15.2 (Python 3.10) opening this store ran the payload."""
    marker = tmp_path / "payload-ran"
    payload = base64.standard_b64encode(pickle.dumps(_Payload(marker))).decode()
    evil = _crafted_v2(
        tmp_path / "evil.zarr", dtype=[["a", "|O"]], fill_value=payload, filters=[{"id": "pickle", "protocol": 5}]
    )
    with pytest.raises(UnreadableFileError, match=r"evil\.zarr: array / has data type .*refusing to open it"):
        open_volume(evil)
    _crafted_v2(evil, compressor={"id": "pickle", "protocol": 5})
    with pytest.raises(
        UnreadableFileError, match=r"evil\.zarr: array / uses codec 'pickle', which is not on EMViewer's list"
    ):
        open_volume(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"dtype": "|O", "filters": [{"id": "vlen-utf8"}]}, "data type '|O'"),
        ({"dtype": "<U4"}, "data type '<U4'"),
        ({"filters": [{"id": "msgpack2"}]}, "codec 'msgpack2'"),
        ({"compressor": {"id": "imagecodecs_jpeg2k"}}, "codec 'imagecodecs_jpeg2k'"),
        ({"filters": [{"id": "delta", "dtype": "|O"}]}, "with dtype '|O'"),
        ({"fill_value": "gASVPQAAAAAA"}, "fill value"),
    ],
)
def test_v2_metadata_off_the_allow_list_is_refused(tmp_path, meta, problem):
    with pytest.raises(UnreadableFileError, match=rf"bad\.zarr: array / .*{problem}"):
        open_volume(_crafted_v2(tmp_path / "bad.zarr", **meta))


def test_v3_codecs_off_the_allow_list_are_refused(tmp_path, stack):
    path = tmp_path / "v3.zarr"
    zarr.create_array(str(path), shape=stack.shape, dtype=stack.dtype, shards=(1, 128, 96), chunks=(1, 64, 48))[:] = (
        stack
    )
    with open_volume(path) as volume:  # sharded, with zstd inside: on the list
        np.testing.assert_array_equal(volume[1], stack[1])
    meta = json.loads((path / "zarr.json").read_text())
    meta["codecs"][0]["configuration"]["codecs"].append({"name": "numcodecs.pickle"})
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UnreadableFileError, match=r"v3\.zarr: array / uses codec 'numcodecs.pickle'"):
        open_volume(path)
    meta["data_type"] = "string"
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(UnreadableFileError, match=r"data type 'string'"):
        open_volume(path)


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ({"shape": [2**14, 2**14, 2**14], "chunks": [1, 512, 512]}, "claims 4.0 TiB"),
        ({"shape": [2, 8, 8], "chunks": [1, 2**16, 2**16]}, "a chunk may decode to at most 1 GiB"),
        ({"shape": [0, 8, 8]}, "every axis must hold 1"),
        ({"shape": [2**21, 1, 1]}, "every axis must hold 1"),
    ],
)
def test_sizes_no_real_image_has_are_refused_before_reading(tmp_path, meta, problem):
    with pytest.raises(ImageContentError, match=rf"huge\.zarr: array / .*{problem}"):
        open_volume(_crafted_v2(tmp_path / "huge.zarr", **meta))


def test_a_bad_sibling_is_never_opened(tmp_path, stack):
    path = tmp_path / "mixed.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("raw", shape=stack.shape, dtype=stack.dtype)[:] = stack
    marker = tmp_path / "payload-ran"
    payload = base64.standard_b64encode(pickle.dumps(_Payload(marker))).decode()
    _crafted_v2(path / "evil", dtype=[["a", "|O"]], fill_value=payload, filters=[{"id": "pickle"}])
    with open_volume(f"{path}:raw") as volume:
        np.testing.assert_array_equal(volume[0], stack[0])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../other.zarr", "raw/../../other.zarr", "./raw", "raw\\..\\x"])
def test_array_paths_stay_inside_the_store(tmp_path, stack, name):
    path = tmp_path / "store.zarr"
    zarr.open_group(str(path), mode="w").create_array("raw", shape=stack.shape, dtype=stack.dtype)[:] = stack
    zarr.create_array(str(tmp_path / "other.zarr"), shape=stack.shape, dtype=stack.dtype)[:] = stack
    with pytest.raises(InputError, match=r"store\.zarr: array path .* (steps outside|backslash)"):
        open_volume(f"{path}:{name}")


def test_ngff_dataset_path_stays_inside_the_store(tmp_path, stack):
    zarr.create_array(str(tmp_path / "secret.zarr"), shape=stack.shape, dtype=stack.dtype)[:] = stack
    ome = _ome_store(tmp_path / "img" / "trick.ome.zarr", stack, {})
    attrs = _ngff("zyx", [1, 1, 1])
    attrs["multiscales"][0]["datasets"][0]["path"] = "../../secret.zarr"
    (ome / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(
        InputError, match=r"trick\.ome\.zarr: OME-Zarr dataset path '\.\./\.\./secret\.zarr' steps outside"
    ):
        open_volume(ome)


def test_links_leading_outside_the_store_are_refused(tmp_path, stack):
    path = tmp_path / "store.zarr"
    zarr.create_array(str(path), shape=stack.shape, dtype=stack.dtype, chunks=(1, 128, 96), zarr_format=2)[:] = stack
    outside = tmp_path / "private.bin"
    outside.write_bytes((path / "1.0.0").read_bytes())  # a valid chunk, but not the store's
    (path / "1.0.0").unlink()
    (path / "1.0.0").symlink_to(outside)
    with open_volume(path) as volume:
        np.testing.assert_array_equal(volume[0], stack[0])
        with pytest.raises(
            UnreadableFileError, match=r"store\.zarr: 1\.0\.0 is a symbolic link leading outside the store"
        ):
            volume[1]
    inside = tmp_path / "linked.zarr"  # links that stay inside the store are fine
    zarr.create_array(str(inside), shape=stack.shape, dtype=stack.dtype, chunks=(1, 128, 96), zarr_format=2)[:] = stack
    os.replace(inside / "2.0.0", inside / "chunk-two")
    (inside / "2.0.0").symlink_to(inside / "chunk-two")
    with open_volume(inside) as volume:
        np.testing.assert_array_equal(volume[2], stack[2])


def test_an_array_folder_linked_from_outside_is_refused(tmp_path, stack):
    elsewhere = tmp_path / "elsewhere.zarr"
    zarr.create_array(str(elsewhere), shape=stack.shape, dtype=stack.dtype)[:] = stack
    path = tmp_path / "store.zarr"
    zarr.open_group(str(path), mode="w")
    (path / "raw").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnreadableFileError, match=r"store\.zarr: raw is a symbolic link leading outside the store"):
        open_volume(f"{path}:raw")
    with pytest.raises(UnreadableFileError, match="leading outside the store"):
        open_volume(path)


def test_damaged_chunks_and_metadata_name_the_store(tmp_path, stack):
    path = tmp_path / "damaged.zarr"
    zarr.create_array(str(path), shape=stack.shape, dtype=stack.dtype, chunks=(1, 128, 96), zarr_format=2)[:] = stack
    (path / "1.0.0").write_bytes(b"\x02\x01garbage, not blosc")
    with (
        open_volume(path) as volume,
        pytest.raises(UnreadableFileError, match=r"damaged\.zarr: a chunk could not be read"),
    ):
        volume[1]
    (path / ".zarray").write_text("{not json")
    with pytest.raises(UnreadableFileError, match=r"damaged\.zarr: \.zarray is not valid JSON"):
        open_volume(path)
    (path / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    (path / ".zarray").write_text("{}")
    with pytest.raises(UnreadableFileError, match=r"damaged\.zarr: the root holds both Zarr v2 and v3 metadata"):
        open_volume(path)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="numcodecs for Python 3.10 (<= 0.13.1) predates the fix")
def test_installed_numcodecs_refuses_to_unpickle():
    """The pins choose numcodecs with GHSA-jqc8-qjfv-5m6r fixed: a second line behind the allow-list."""
    import numcodecs
    from numcodecs.errors import UnsafeDecodeError

    with pytest.raises(UnsafeDecodeError):
        numcodecs.Pickle().decode(pickle.dumps(np.arange(3, dtype=object)))
