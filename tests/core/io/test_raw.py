"""RAW stacks: the sidecar carries shape, dtype, byte order and voxel size; hostile sidecars are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emviewer.core.errors import ImageContentError, InputError, UnreadableFileError
from emviewer.core.export import export
from emviewer.core.io import ReadOptions, open_volume
from emviewer.core.io.mapped import MappedArray
from emviewer.core.io.raw import sidecar_path, write_raw
from emviewer.core.volume import from_array


@pytest.fixture
def stack() -> np.ndarray:
    return (np.arange(3 * 20 * 30, dtype=np.uint32).reshape(3, 20, 30) * 37 % 65536).astype(np.uint16)


def _raw(tmp_path, array: np.ndarray, **meta) -> Path:  # noqa: F821
    """A ``.raw`` file of ``array``'s bytes and a sidecar of ``meta`` (defaults from the array)."""
    path = tmp_path / "stack.raw"
    path.write_bytes(array.tobytes())
    sidecar = {"shape": list(array.shape), "dtype": array.dtype.name, "byte_order": "little", **meta}
    sidecar_path(path).write_text(json.dumps(sidecar))
    return path


def test_pixel_size_round_trips_through_the_sidecar(tmp_path, stack):
    path = tmp_path / "a.raw"
    write_raw(
        path,
        iter(stack),
        stack.shape,
        stack.dtype,
        pixel_size=(50.0, 7.0, 7.5),
        extra={"content": "raw", "shape": "ignored"},
    )
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["pixel_size_nm"] == [50.0, 7.0, 7.5] and meta["pixel_size_unit"] == "nm"
    assert meta["shape"] == [3, 20, 30] and meta["content"] == "raw"
    volume = open_volume(path)
    assert volume.pixel_size == (50.0, 7.0, 7.5) and isinstance(volume.data, MappedArray)
    assert volume.metadata["pixel_size_from"] == "sidecar a.raw.json (pixel_size_nm)"
    np.testing.assert_array_equal(volume.read(), stack)

    write_raw(path, iter(stack), stack.shape, stack.dtype, pixel_size=(None, 4.0, 4.0))
    assert json.loads(sidecar_path(path).read_text())["pixel_size_nm"] == [None, 4.0, 4.0]
    assert open_volume(path).pixel_size == (None, 4.0, 4.0)
    write_raw(path, iter(stack), stack.shape, stack.dtype)
    assert json.loads(sidecar_path(path).read_text())["pixel_size_nm"] is None
    assert open_volume(path).pixel_size is None


def test_export_writes_the_volumes_pixel_size(tmp_path, stack):
    volume = from_array(stack, "anisotropic", pixel_size=(50.0, 7.0, 7.0))
    export(tmp_path / "out.raw", volume)
    back = open_volume(tmp_path / "out.raw")
    assert back.pixel_size == (50.0, 7.0, 7.0)
    np.testing.assert_array_equal(back.read(), stack)


def test_big_endian_raw_reads_exactly_in_native_order(tmp_path, stack):
    path = tmp_path / "be.raw"
    write_raw(path, iter(stack), stack.shape, stack.dtype.newbyteorder(">"))
    assert json.loads(sidecar_path(path).read_text())["byte_order"] == "big"
    assert path.read_bytes()[:2] == stack.astype(">u2").tobytes()[:2]
    volume = open_volume(path)
    assert volume.dtype == np.uint16 and volume.dtype.isnative
    np.testing.assert_array_equal(volume.read(), stack)


def test_colour_raw_needs_a_channel(tmp_path, stack):
    rgb = np.stack([stack, stack // 2, stack // 3], -1)
    path = tmp_path / "rgb.raw"
    write_raw(path, iter(rgb), rgb.shape, rgb.dtype)
    with pytest.raises(ImageContentError, match=r"rgb\.raw: has 3 channels .*--channel N"):
        open_volume(path)
    np.testing.assert_array_equal(open_volume(path, ReadOptions(channel=1)).read(), stack // 2)


@pytest.mark.parametrize(
    "sidecar, problem",
    [
        ("[3, 20, 30]", "must be a JSON object"),
        ('"uint16"', "must be a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"shape": [3, 20, NaN], "dtype": "uint16"}', "not valid JSON"),
        ('{"shape": [-3, -20, 30], "dtype": "uint16"}', "shape must be a list of 2 to 6 positive integers"),
        ('{"shape": [0, 20, 30], "dtype": "uint16"}', "shape must be"),
        ('{"shape": [3, 20, 30.0], "dtype": "uint16"}', "shape must be"),
        ('{"shape": [true, 20, 30], "dtype": "uint16"}', "shape must be"),
        ('{"shape": "3x20x30", "dtype": "uint16"}', "shape must be"),
        ('{"shape": [3, 20, 30], "dtype": "O"}', "dtype 'O' is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "V2"}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "u1,u1"}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "(2,)u1"}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "U1"}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": ["uint16"]}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "no such type"}', "is not a pixel type"),
        ('{"shape": [3, 20, 30], "dtype": "uint16", "byte_order": "middle"}', "byte_order must be"),
        ('{"shape": [3, 20, 30], "dtype": "uint16", "order": "F"}', "order must be 'C'"),
        ('{"shape": [3, 20, 30], "dtype": "uint16", "pixel_size_nm": [1, -2, 3]}', "pixel_size_nm must be"),
        ('{"shape": [3, 20, 30], "dtype": "uint16", "pixel_size_nm": [1, 2]}', "pixel_size_nm must be"),
        ('{"shape": [3, 20, 30], "dtype": "uint16", "pixel_size_nm": [1, null, 3]}', "pixel_size_nm must be"),
        (
            '{"shape": [3, 20, 30], "dtype": "uint16", "pixel_size_nm": [1, 2, 3], "pixel_size_unit": "furlong"}',
            "pixel_size_unit must be",
        ),
    ],
)
def test_hostile_sidecars_are_refused_naming_the_sidecar(tmp_path, stack, sidecar, problem):
    path = _raw(tmp_path, stack)
    sidecar_path(path).write_text(sidecar)
    with pytest.raises(UnreadableFileError) as caught:
        open_volume(path)
    message = str(caught.value)
    assert message.startswith(f"{sidecar_path(path)}: ") and problem in message and "\n" not in message


@pytest.mark.parametrize(
    "shape",
    [
        [2**32, 2**32, 1],  # 2**64 elements: wraps to 0 in int64, and the file is empty
        [2**40, 2**40, 2**40],
        [4, 20, 30],  # one slice more than the file holds
        [2, 20, 30],  # one slice less
    ],
)
def test_shapes_that_do_not_match_the_file_are_never_mapped(tmp_path, stack, shape):
    path = _raw(tmp_path, stack if shape[0] < 2**32 else stack[:0], shape=shape)
    with pytest.raises(
        UnreadableFileError, match=r"stack\.raw: file has [\d,]+ bytes, the sidecar's shape .* need [\d,]+"
    ):
        open_volume(path)


def test_missing_or_oversized_sidecar_is_refused(tmp_path, stack):
    path = tmp_path / "lone.raw"
    path.write_bytes(stack.tobytes())
    with pytest.raises(UnreadableFileError, match=r"lone\.raw: no sidecar lone\.raw\.json"):
        open_volume(path)
    sidecar_path(path).write_text(json.dumps({"shape": [3, 20, 30], "dtype": "uint16", "padding": "x" * 2**21}))
    with pytest.raises(UnreadableFileError, match=r"lone\.raw\.json: sidecar is [\d,]+ bytes"):
        open_volume(path)


def test_axes_override_reads_a_yxz_raw(tmp_path, stack):
    stored = np.ascontiguousarray(np.moveaxis(stack, 0, -1))  # (Y, X, Z)
    path = _raw(tmp_path, stored)
    with pytest.raises(InputError):  # (20, 30, 3) is taken for (Y, X, channels) without --axes
        open_volume(path)
    np.testing.assert_array_equal(open_volume(path, ReadOptions(axes="YXZ")).read(), stack)
