"""HDF5 reading and writing on real SBEM crops: layouts, axis names, voxel size, codecs, damage.

Files are written at test time with h5py (+ hdf5plugin) the way ilastik, Fiji's HDF5 plugin,
BigDataViewer and CREMI write them. Crafted files that point outside themselves (external
storage, virtual datasets, external links) are at the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from PIL import Image

from emviewer.core.errors import InputError, UnreadableFileError
from emviewer.core.export import export
from emviewer.core.io import ReadOptions, open_volume
from emviewer.core.volume import from_array


@pytest.fixture
def stack(cdeep3m):
    """Three real SBEM slices (images.010-012) cropped to 128 x 96, uint8, (Z, Y, X)."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-2].png"))
    return np.stack([np.asarray(Image.open(f))[:128, :96] for f in files])


def _axistags(axes: str) -> str:
    """ilastik's axistags attribute (vigra JSON) for stored axes such as ``"tzyxc"``."""
    flags = {"t": 8, "c": 1, "z": 2, "y": 2, "x": 2}
    return json.dumps({"axes": [{"key": k, "typeFlags": flags[k], "resolution": 0, "description": ""} for k in axes]})


def _write(path, data, name="exported_data", axes=None, **kwargs):
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset(name, data=data, **kwargs)
        if axes:
            ds.attrs["axistags"] = _axistags(axes)
    return path


# ---------------------------------------------------------------------------- datasets and picking


def test_hdf5_single_dataset_and_explicit_choice(tmp_path, stack):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5["group/raw"] = stack
        h5["meta"] = np.arange(5)  # 1D, not an image
    with open_volume(path) as volume:
        assert volume.source.endswith(":/group/raw") and volume.metadata["axes"] == "ZYX"
        np.testing.assert_array_equal(volume.slice(1), stack[1])
    with h5py.File(path, "a") as h5:
        h5["other"] = stack[:2]
    with pytest.raises(InputError, match="several"):
        open_volume(path)
    with open_volume(f"{path}:/other") as volume:
        assert volume.shape == (2, 128, 96)


def test_hdf5_2d_dataset_is_one_slice(tmp_path, stack):
    path = _write(tmp_path / "one.hdf5", stack[0], name="img")
    with open_volume(path) as volume:
        assert volume.shape == (1, 128, 96)
        np.testing.assert_array_equal(volume.slice(0), stack[0])


def test_picker_considers_4d_and_5d_datasets(tmp_path, stack):
    path = tmp_path / "five.h5"
    with h5py.File(path, "w") as h5:
        h5["profile"] = np.arange(10)
        h5["volumes/tzyxc"] = stack[None, ..., None]
    with open_volume(path) as volume:
        assert volume.source.endswith(":/volumes/tzyxc") and volume.shape == stack.shape
        np.testing.assert_array_equal(volume.read(), stack)


def test_missing_dataset_lists_the_ones_there(tmp_path, stack):
    path = _write(tmp_path / "one.h5", stack, name="raw")
    with pytest.raises(InputError, match=r"one\.h5: no dataset '/nope' in the file \(it has: /raw\)"):
        open_volume(f"{path}:/nope")


def test_soft_link_inside_the_file_is_followed(tmp_path, stack):
    path = _write(tmp_path / "soft.h5", stack, name="data/raw")
    with h5py.File(path, "a") as h5:
        h5["alias"] = h5py.SoftLink("/data/raw")
        h5["data/relative"] = h5py.SoftLink("raw")
    for name in ("/alias", "/data/relative"):
        with open_volume(f"{path}:{name}") as volume:
            np.testing.assert_array_equal(volume.read(), stack)
            assert volume.metadata["dataset"] == "/data/raw"


def test_soft_link_loop_is_refused(tmp_path, stack):
    path = _write(tmp_path / "loop.h5", stack, name="raw")
    with h5py.File(path, "a") as h5:
        h5["a"] = h5py.SoftLink("/b")
        h5["b"] = h5py.SoftLink("/a")
    with pytest.raises(UnreadableFileError, match=r"loop\.h5: /\w starts a chain of more than 32 soft links"):
        open_volume(f"{path}:/a")
    with open_volume(path) as volume:  # the picker lists objects, not links: the loop is harmless
        np.testing.assert_array_equal(volume.read(), stack)


# ---------------------------------------------------------------------------- channel and time axes


LAYOUTS = {
    "yxc": lambda s: s[0][..., None],
    "zyxc": lambda s: s[..., None],
    "czyx": lambda s: s[None],
    "tzyxc": lambda s: s[None, ..., None],
}


@pytest.mark.parametrize("tagged", [True, False], ids=["ilastik-axistags", "no-axis-names"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ilastik_layouts_with_one_channel_read_as_grey(tmp_path, stack, layout, tagged):
    data = LAYOUTS[layout](stack)
    path = _write(tmp_path / f"{layout}.h5", data, axes=layout if tagged else None, chunks=True, compression="gzip")
    expected = stack[:1] if layout == "yxc" else stack
    with open_volume(path) as volume:
        assert volume.shape == expected.shape and volume.dtype == np.uint8
        assert volume.metadata["axes"] == layout.upper()
        np.testing.assert_array_equal(volume.read(), expected)
        np.testing.assert_array_equal(volume[1:, 10:20, 5:9], expected[1:, 10:20, 5:9])


def test_several_channels_need_a_choice(tmp_path, stack):
    rgbish = np.stack([stack, 255 - stack, stack // 2], axis=-1)  # (Z, Y, X, 3)
    path = _write(tmp_path / "three.h5", rgbish, axes="zyxc")
    with pytest.raises(InputError, match=r"three\.h5:/exported_data: has 3 channels \(axes ZYXC.*--channel N"):
        open_volume(path)
    with open_volume(path, ReadOptions(channel=1)) as volume:
        np.testing.assert_array_equal(volume.read(), 255 - stack)


def test_axistags_decide_over_the_guess(tmp_path, stack):
    # (2, Y, X) would be guessed as two slices; ilastik says two channels.
    path = _write(tmp_path / "cyx.h5", stack[:2], axes="cyx")
    with pytest.raises(InputError, match=r"has 2 channels \(axes CYX"):
        open_volume(path)
    with open_volume(path, ReadOptions(channel=1)) as volume:
        assert volume.shape == (1, 128, 96)
        np.testing.assert_array_equal(volume.slice(0), stack[1])


def test_h5py_dimension_labels_name_the_axes(tmp_path, stack):
    path = tmp_path / "labelled.h5"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("raw", data=np.moveaxis(stack, 0, -1))  # (Y, X, 3 channels)
        for dim, label in zip(ds.dims, ("y", "x", "channel"), strict=True):
            dim.label = label
    with pytest.raises(InputError, match=r"axes YXC"):
        open_volume(path)
    with open_volume(path, ReadOptions(channel=2)) as volume:
        np.testing.assert_array_equal(volume.slice(0), stack[2])


def test_axes_option_overrides_the_file(tmp_path, stack):
    path = _write(tmp_path / "plain.h5", stack, axes="zyx")
    with open_volume(path, ReadOptions(axes="CYX", channel=2)) as volume:
        assert volume.shape == (1, 128, 96) and volume.metadata["axes"] == "CYX"
        np.testing.assert_array_equal(volume.slice(0), stack[2])
    with pytest.raises(InputError, match=r"plain\.h5:/exported_data: axes 'ZYXC' name 4 axes"):
        open_volume(path, ReadOptions(axes="ZYXC"))


def test_axistags_that_do_not_fit_are_reported(tmp_path, stack):
    path = _write(tmp_path / "wrong.h5", stack, axes="yx")
    with pytest.raises(InputError, match=r"wrong\.h5:/exported_data: its 'axistags' .* --axes"):
        open_volume(path)


# ---------------------------------------------------------------------------- voxel size


PIXEL_ATTRIBUTES = [
    ({"pixel_size_nm": [50.0, 7.0, 7.0]}, (50.0, 7.0, 7.0), "pixel_size_nm"),
    ({"pixel_size_nm": [np.nan, 7.0, 7.0]}, (None, 7.0, 7.0), "pixel_size_nm"),
    ({"element_size_um": [0.05, 0.007, 0.007]}, (50.0, 7.0, 7.0), "element_size_um"),
    ({"resolution": [40.0, 4.0, 4.0]}, (40.0, 4.0, 4.0), "resolution"),
    ({"pixel_size": [0.05, 0.007, 0.007], "unit": "um"}, (50.0, 7.0, 7.0), "pixel_size"),
    ({"pixel_size": [500.0, 70.0, 70.0], "unit": b"angstrom"}, (50.0, 7.0, 7.0), "pixel_size"),
    ({"pixel_size": [6.0, 5.0]}, (None, 6.0, 5.0), "pixel_size"),
]


@pytest.mark.parametrize("on_group", [False, True], ids=["on-dataset", "on-group"])
@pytest.mark.parametrize(
    "attrs, expected, name", PIXEL_ATTRIBUTES, ids=[f"{a[2]}-{i}" for i, a in enumerate(PIXEL_ATTRIBUTES)]
)
def test_pixel_size_from_attributes(tmp_path, stack, attrs, expected, name, on_group):
    path = tmp_path / "calibrated.h5"
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("volume/raw", data=stack)
        (ds.parent if on_group else ds).attrs.update(attrs)
    with open_volume(path) as volume:
        assert volume.pixel_size == expected
        assert volume.metadata["pixel_size_from"] == f"HDF5 attribute {name}" + (
            " of group /volume" if on_group else ""
        )


def test_no_calibration_and_unknown_unit_give_no_pixel_size(tmp_path, stack):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as h5:
        h5["raw"] = stack
        h5["raw"].attrs.update({"pixel_size": [1.0, 1.0, 1.0], "unit": "pixel"})
    with open_volume(path) as volume:
        assert volume.pixel_size is None and "pixel_size_from" not in volume.metadata


@pytest.mark.parametrize("pixel_size", [(50.0, 7.0, 7.0), (None, 4.5, 4.5)])
def test_written_pixel_size_reads_back(tmp_path, stack, pixel_size):
    raw = from_array(stack, pixel_size=pixel_size)
    mask = from_array((stack > 128).astype(np.uint8))
    export(tmp_path / "out.h5", raw, masks={"mito": mask})
    with h5py.File(tmp_path / "out.h5", "r") as h5:
        for name in ("raw", "masks/mito"):
            z, y, x = h5[name].attrs["pixel_size_nm"]
            assert (None if np.isnan(z) else z, y, x) == pixel_size
            if pixel_size[0] is None:
                assert "element_size_um" not in h5[name].attrs
            else:
                np.testing.assert_allclose(h5[name].attrs["element_size_um"], np.array(pixel_size) / 1000)
    with open_volume(f"{tmp_path / 'out.h5'}:/raw") as volume:
        assert volume.pixel_size == pixel_size
        np.testing.assert_array_equal(volume.read(), stack)


# ---------------------------------------------------------------------------- codecs and damage


CODECS = {
    "blosc": hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE),
    "lz4": hdf5plugin.LZ4(),
    "zstd": hdf5plugin.Zstd(),
    "bitshuffle": hdf5plugin.Bitshuffle(),
}


@pytest.mark.parametrize("codec", list(CODECS))
def test_plugin_compressed_datasets_read_exactly(tmp_path, stack, codec):
    data = stack.astype(np.uint16) * 257  # BigDataViewer writes uint16
    path = _write(tmp_path / f"{codec}.h5", data, name="t00000/s00/0/cells", chunks=(1, 64, 32), **CODECS[codec])
    with open_volume(path) as volume:
        assert volume.dtype == np.uint16
        np.testing.assert_array_equal(volume.read(), data)


def test_reader_registers_the_codecs_itself(tmp_path, stack):
    """In a fresh interpreter that never imported hdf5plugin, as the CLI and the server run."""
    paths = [
        _write(tmp_path / f"{codec}.h5", stack, name="raw", chunks=(1, 64, 32), **CODECS[codec]) for codec in CODECS
    ]
    script = (
        "import sys; from emviewer.core.io import open_volume; "
        "print(*[int(open_volume(p).read().sum()) for p in sys.argv[1:]])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(int(stack.sum()))] * len(CODECS)


def test_big_endian_dataset_reads_in_native_order(tmp_path, stack):
    data = (stack.astype(np.uint16) * 257).astype(">u2")
    path = _write(tmp_path / "be.h5", data, name="raw")
    with open_volume(path) as volume:
        assert volume.dtype == np.dtype("=u2")
        np.testing.assert_array_equal(volume.read(), data)


def test_filter_not_installed_is_refused_when_opened(tmp_path, stack):
    path = tmp_path / "proprietary.h5"
    with h5py.File(path, "w") as h5:  # as a writer with a codec we lack would leave it
        ds = h5.create_dataset(
            "raw",
            shape=stack.shape,
            dtype=stack.dtype,
            chunks=(1, 128, 96),
            compression=47999,
            allow_unknown_filter=True,
        )
        for z in range(len(stack)):
            ds.id.write_direct_chunk((z, 0, 0), stack[z].tobytes())
    with pytest.raises(
        UnreadableFileError,
        match=r"proprietary\.h5: dataset /raw is compressed with HDF5 filter .*\(id 47999\), for which no decoder",
    ):
        open_volume(path)


def test_chunks_that_decode_past_the_budget_are_refused(tmp_path):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as h5:  # nothing written: a few KB on disk, 2 GiB per chunk when read
        h5.create_dataset(
            "raw", shape=(2, 16384, 16384), dtype=np.float32, chunks=(2, 16384, 16384), compression="gzip"
        )
    assert path.stat().st_size < 100_000
    with pytest.raises(UnreadableFileError, match=r"bomb\.h5: dataset /raw is stored in chunks .* 2\.0 GiB each"):
        open_volume(path)


def _blosc_file_with_damaged_chunk(path, stack):
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("raw", data=stack, chunks=(1, 128, 96), **hdf5plugin.Blosc())
        ds.id.write_direct_chunk((1, 0, 0), b"\x02\x01\x21\x01" + b"\xff" * 60)  # a Blosc header over garbage
    return path


def test_damaged_chunk_is_reported_with_file_and_dataset(tmp_path, stack):
    path = _blosc_file_with_damaged_chunk(tmp_path / "damaged.h5", stack)
    with open_volume(path) as volume:  # opening reads no data
        np.testing.assert_array_equal(volume.slice(0), stack[0])
        with pytest.raises(UnreadableFileError, match=r"damaged\.h5:/raw: cannot read the data \(.*\)$") as caught:
            volume.slice(1)
    assert "\n" not in str(caught.value)


def test_damaged_chunk_through_the_cli(tmp_path, stack, run_cli):
    path = _blosc_file_with_damaged_chunk(tmp_path / "damaged.h5", stack)
    out = tmp_path / "out"
    code, _, err = run_cli("export", path, "-o", out / "out.raw")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "damaged.h5:/raw: cannot read the data" in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.02])
def test_truncated_file_is_refused_in_one_line(tmp_path, stack, keep):
    path = _write(tmp_path / "cut.h5", stack, name="raw", chunks=(1, 64, 64), compression="gzip")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(
        UnreadableFileError,
        match=r"cut\.h5: the file is truncated: its header says it holds [\d,]+ bytes, but it has [\d,]+$",
    ):
        open_volume(path)


def test_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"\x89HDF not really" * 50)
    with pytest.raises(UnreadableFileError, match=r"fake\.h5: not a readable HDF5 file \(.*signature"):
        open_volume(path)


# ---------------------------------------------------------------------------- files pointing outside themselves

SECRET = np.frombuffer(b"private-upload-of-another-lab!!!" * 8, dtype=np.uint8).reshape(4, 8, 8)


def _place_secret(folder) -> None:
    """Another file on the machine: raw bytes, and an HDF5 file holding them as /data."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret.bin").write_bytes(SECRET.tobytes())
    with h5py.File(folder / "secret.h5", "w") as h5:
        h5["data"] = SECRET
        h5["grp/data"] = SECRET


def external_storage(h5, folder):
    h5.create_dataset(
        "raw", shape=SECRET.shape, dtype=np.uint8, external=[(str(folder / "secret.bin"), 0, SECRET.nbytes)]
    )
    return r"dataset /raw keeps its data in external files"


def virtual_dataset(h5, folder):
    layout = h5py.VirtualLayout(shape=SECRET.shape, dtype=np.uint8)
    layout[:] = h5py.VirtualSource(str(folder / "secret.h5"), "data", shape=SECRET.shape)
    h5.create_virtual_dataset("raw", layout)
    return r"dataset /raw is a virtual dataset"


def external_link(h5, folder):
    h5["raw"] = h5py.ExternalLink(str(folder / "secret.h5"), "/data")
    return r"/raw is an external link to .*secret\.h5:/data"


def soft_link_through_external_link(h5, folder):
    h5["elsewhere"] = h5py.ExternalLink(str(folder / "secret.h5"), "/grp")
    h5["raw"] = h5py.SoftLink("/elsewhere/data")
    return r"/elsewhere is an external link to .*secret\.h5:/grp"


CRAFTS = [external_storage, virtual_dataset, external_link, soft_link_through_external_link]


def _craft(folder, craft, secret_exists=True):
    target = folder / "target"
    folder.mkdir(parents=True, exist_ok=True)
    if secret_exists:
        _place_secret(target)
    path = folder / "crafted.h5"
    with h5py.File(path, "w") as h5:
        reason = craft(h5, target)
    return path, reason


@pytest.mark.parametrize("named", [False, True], ids=["picked", "named"])
@pytest.mark.parametrize("craft", CRAFTS, ids=lambda c: c.__name__)
def test_crafted_file_cannot_read_another_file(tmp_path, craft, named):
    path, reason = _craft(tmp_path, craft)
    spec = f"{path}:/raw" if named else path
    with pytest.raises(
        UnreadableFileError, match=f"crafted\\.h5: {reason}.*reads only data stored inside the file"
    ) as caught:
        open_volume(spec)
    assert "private-upload" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("craft", CRAFTS, ids=lambda c: c.__name__)
def test_refusal_does_not_tell_whether_the_target_exists(tmp_path, craft):
    there, _ = _craft(tmp_path / "a", craft, secret_exists=True)
    absent, _ = _craft(tmp_path / "b", craft, secret_exists=False)
    problems = []
    for path in (there, absent):
        with pytest.raises(UnreadableFileError) as caught:
            open_volume(f"{path}:/raw")
        problems.append(caught.value.problem.replace(str(path.parent), "<folder>"))
    assert problems[0] == problems[1]


@pytest.mark.parametrize("craft", CRAFTS, ids=lambda c: c.__name__)
def test_crafted_file_through_the_cli_writes_nothing(tmp_path, craft, run_cli):
    path, reason = _craft(tmp_path, craft)
    out = tmp_path / "out"
    code, stdout, err = run_cli("export", path, "-o", out / "out.raw")
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "crafted.h5" in lines[0] and "reads only data stored inside the file" in lines[0]
    assert "private-upload" not in stdout + err
    assert not out.exists() or not any(out.iterdir())


def test_picker_never_follows_external_links(tmp_path, stack):
    """h5py's visititems (H5Ovisit) recurses through hard links only: linked datasets are not candidates."""
    _place_secret(tmp_path / "target")
    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w") as h5:
        h5["local"] = stack
        h5["linked_file"] = h5py.ExternalLink(str(tmp_path / "target" / "secret.h5"), "/")
        h5["group/linked_data"] = h5py.ExternalLink(str(tmp_path / "target" / "secret.h5"), "/data")
    from emviewer.core.io.hdf5 import image_datasets

    with h5py.File(path, "r") as h5:
        assert image_datasets(h5) == ["/local"]
    with pytest.raises(UnreadableFileError, match=r"mixed\.h5: /group/linked_data is an external link"):
        open_volume(path)  # picking would have to trust every link: it refuses
    with open_volume(f"{path}:/local") as volume:  # a named dataset inside the file is fine
        np.testing.assert_array_equal(volume.read(), stack)


def test_file_handle_resolves_links_inside_the_file_only(tmp_path):
    """Second line of defence: HDF5 opens any "other file" through our own file object."""
    from emviewer.core.io.hdf5_safety import open_checked

    _place_secret(tmp_path / "target")
    path = tmp_path / "crafted.h5"
    with h5py.File(path, "w") as h5:
        h5["link"] = h5py.ExternalLink(str(tmp_path / "target" / "secret.h5"), "/data")
        virtual_dataset(h5, tmp_path / "target")
    h5, handle = open_checked(path)
    try:
        with pytest.raises(KeyError):
            h5["link"]  # resolved in crafted.h5 itself, which has no /data
        assert not np.array_equal(h5["raw"][...], SECRET)  # the mapping finds no source: fill values
    finally:
        h5.close()
        handle.close()


def test_provenance_parameters_read_back_only_when_well_formed(tmp_path):
    from emviewer.core.io.hdf5 import MAX_PROVENANCE_BYTES, read_provenance_parameters

    def file_with(name: str, value) -> Path:
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            f["raw"] = np.zeros((2, 4, 4), np.uint8)
            if value is not None:
                f.attrs["parameters"] = value
        return path

    assert read_provenance_parameters(file_with("good.h5", '{"command": "predict", "mode": "fast"}')) == {
        "command": "predict",
        "mode": "fast",
    }
    for name, value in [
        ("none.h5", None),
        ("text.h5", "not json"),
        ("list.h5", "[1, 2]"),
        ("number.h5", np.arange(3)),
        ("huge.h5", '{"a": "' + "x" * MAX_PROVENANCE_BYTES + '"}'),
    ]:
        assert read_provenance_parameters(file_with(name, value)) == {}, name
    not_hdf5 = tmp_path / "fake.h5"
    not_hdf5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # the signature alone
    assert read_provenance_parameters(not_hdf5) == {}
    assert read_provenance_parameters(tmp_path / "missing.h5") == {}
