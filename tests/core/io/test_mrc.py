"""MRC reading on real SBEM crops: every mode exactly, IMOD's unsigned bytes, voxel size, damage.

Files are written with mrcfile; IMOD/SerialEM files are made by setting the header fields
those programs write (imodStamp at byte 152, imodFlags at byte 156).
"""

from __future__ import annotations

import struct

import mrcfile
import numpy as np
import pytest
from PIL import Image

from emviewer.core.errors import InputError, UnreadableFileError
from emviewer.core.io import open_volume
from emviewer.core.io.mapped import MappedArray

IMOD_STAMP = 1146047817  # the bytes "IMOD" as IMOD and SerialEM write them at header byte 152


@pytest.fixture
def stack(cdeep3m):
    """Three real SBEM slices (images.010-012) cropped to 128 x 96, uint8, (Z, Y, X)."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-2].png"))
    return np.stack([np.asarray(Image.open(f))[:128, :96] for f in files])


def _write(path, data, voxel_size=None, imod_flags=None, big_endian=False):
    """An MRC file as mrcfile writes it; ``imod_flags`` adds IMOD's stamp and flags words."""
    with mrcfile.new(path, overwrite=True) as mrc:
        if big_endian:
            mrc.set_data(np.zeros((1, 1, 1), ">i2"))  # mrcfile follows the data's byte order
        mrc.set_data(data)
        if imod_flags is not None:
            order = ">" if big_endian else "<"
            extra = bytearray(bytes(mrc.header.extra2))
            extra[40:48] = struct.pack(f"{order}ii", IMOD_STAMP, imod_flags)
            mrc.header.extra2 = bytes(extra)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size  # angstrom, (x, y, z)
    return path


def test_mrc_is_memory_mapped_with_pixel_size(tmp_path, stack):
    path = _write(tmp_path / "tomo.mrc", stack.astype(np.int16), voxel_size=50.0)
    with open_volume(path) as volume:
        assert isinstance(volume.data, MappedArray)
        assert volume.dtype == np.int16 and volume.pixel_size == (5.0, 5.0, 5.0)
        assert volume.metadata["pixel_size_from"] == "MRC header" and volume.metadata["axes"] == "ZYX"
        np.testing.assert_array_equal(volume.slice(0), stack[0].astype(np.int16))


@pytest.mark.parametrize(
    "mode, dtype, convert",
    [
        (0, np.int8, lambda s: (s.astype(np.int16) - 128).astype(np.int8)),
        (1, np.int16, lambda s: s.astype(np.int16) * 100 - 12000),
        (2, np.float32, lambda s: s.astype(np.float32) / 255 - 0.25),
        (6, np.uint16, lambda s: s.astype(np.uint16) * 257),
        (12, np.float16, lambda s: (s.astype(np.float16) / 16).astype(np.float16)),
    ],
)
def test_each_mode_reads_exactly(tmp_path, stack, mode, dtype, convert):
    data = convert(stack)
    path = _write(tmp_path / f"mode{mode}.mrc", data)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode
    with open_volume(path) as volume:
        assert volume.dtype == dtype
        np.testing.assert_array_equal(volume.read(), data)


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
def test_imod_unsigned_bytes_read_as_uint8(tmp_path, stack, big_endian):
    """IMOD/SerialEM: stamp set, flags bit 0 clear = unsigned; 200 must read as 200, not -56."""
    data = stack.copy()
    data[0, 0, :3] = (200, 255, 0)
    path = _write(
        tmp_path / "serialem.mrc", data.view(np.int8), voxel_size=(16.4, 16.4, 0.0), imod_flags=0, big_endian=big_endian
    )
    with open_volume(path) as volume:
        assert volume.dtype == np.uint8 and isinstance(volume.data, MappedArray)  # a view, not a copy
        assert volume.slice(0)[0, :3].tolist() == [200, 255, 0]
        np.testing.assert_array_equal(volume.read(), data)
        assert volume.pixel_size == (None, 1.64, 1.64)


@pytest.mark.parametrize(
    "imod_flags", [1, 1 | 2, None], ids=["imod-signed-flag", "imod-signed-and-other-flags", "no-imod-stamp"]
)
def test_signed_bytes_stay_int8(tmp_path, stack, imod_flags):
    data = (stack.astype(np.int16) - 128).astype(np.int8)
    path = _write(tmp_path / "signed.mrc", data, imod_flags=imod_flags)
    with open_volume(path) as volume:
        assert volume.dtype == np.int8
        np.testing.assert_array_equal(volume.read(), data)


def test_imod_flags_do_not_touch_other_modes(tmp_path, stack):
    data = stack.astype(np.int16) - 100
    path = _write(tmp_path / "imod16.mrc", data, imod_flags=0)
    with open_volume(path) as volume:
        assert volume.dtype == np.int16
        np.testing.assert_array_equal(volume.read(), data)


def test_single_image_gets_one_slice(tmp_path, stack):
    path = _write(tmp_path / "image.mrc", stack[0].astype(np.float32), voxel_size=(12.0, 12.0, 12.0))
    with open_volume(path) as volume:
        assert volume.shape == (1, 128, 96)
        np.testing.assert_array_equal(volume.slice(0), stack[0])


@pytest.mark.parametrize(
    "voxel_size, expected",
    [((0.0, 0.0, 0.0), None), ((10.0, 10.0, 0.0), (None, 1.0, 1.0)), ((21.5, 21.5, 43.0), (4.3, 2.15, 2.15))],
)
def test_voxel_size_in_nm_and_zero_is_unknown(tmp_path, stack, voxel_size, expected):
    path = _write(tmp_path / "voxels.mrc", stack.astype(np.int16), voxel_size=voxel_size)
    with open_volume(path) as volume:
        assert volume.pixel_size == expected
        assert ("pixel_size_from" in volume.metadata) == (expected is not None)


def test_truncated_file_is_refused_with_what_the_header_claims(tmp_path, stack):
    path = _write(tmp_path / "cut.mrc", stack.astype(np.int16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    held = 3 * 128 * 96 * 2 - 1000
    with pytest.raises(
        UnreadableFileError,
        match=rf"cut\.mrc: the header claims 3 x 128 x 96 values in mode 1 \(73,728 bytes\) "
        rf"but the file holds {held:,} bytes",
    ):
        open_volume(path)


def test_header_claiming_more_slices_is_refused(tmp_path, stack):
    path = _write(tmp_path / "claims.mrc", stack)
    with open(path, "r+b") as f:  # nz (word 3) edited as a damaged or hostile header would say
        f.seek(8)
        f.write(struct.pack("<i", 100_000))
    with pytest.raises(UnreadableFileError, match=r"claims\.mrc: the header claims 100000 x 128 x 96 values"):
        open_volume(path)


def test_unknown_mode_and_short_file_are_refused(tmp_path, stack):
    path = _write(tmp_path / "mode.mrc", stack)
    with open(path, "r+b") as f:
        f.seek(12)
        f.write(struct.pack("<i", 101))  # IMOD's 4-bit mode, which mrcfile does not read
    with pytest.raises(UnreadableFileError, match=r"mode\.mrc: not a readable MRC file \(.*mode"):
        open_volume(path)
    short = tmp_path / "short.mrc"
    short.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UnreadableFileError, match=r"short\.mrc: not a readable MRC file"):
        open_volume(short)


def test_truncated_mrc_through_the_cli(tmp_path, stack, run_cli):
    path = _write(tmp_path / "cut.mrc", stack.astype(np.float32))
    path.write_bytes(path.read_bytes()[:5000])
    out = tmp_path / "out"
    code, _, err = run_cli("export", path, "-o", out / "out.raw")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "cut.mrc: the header claims" in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_complex_mode_is_refused_by_name(tmp_path, stack):
    path = _write(tmp_path / "fft.mrc", stack.astype(np.complex64))
    with pytest.raises(InputError, match=r"fft\.mrc: unsupported pixel type complex64"):
        open_volume(path)
