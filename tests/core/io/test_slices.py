"""Single 2D images and folders of slices: exact values, bounded memory, pixel size, clear refusals.

Files are made at test time by the writers labs use: Pillow (PNG, JPEG), libpng through
imagecodecs (16-bit grey + alpha and RGB PNGs, which Pillow cannot write) and tifffile.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.errors import ImageContentError, InputError
from emviewer.core.io import ReadOptions, open_volume
from emviewer.core.io.common import MAX_DECODED_SLICE_BYTES, check_decoded_size, to_grey
from emviewer.core.io.slices import write_slices
from emviewer.core.io.units import dpi_to_nm


@pytest.fixture
def ramp16() -> np.ndarray:
    """A (48, 64) uint16 ramp using all 16 bits (values that 8 bits cannot hold)."""
    return (np.arange(48 * 64, dtype=np.uint64).reshape(48, 64) * 21 % 65536).astype(np.uint16)


# ---------------------------------------------------------------- decoded-size budget


# VmHWM is this process's own peak: ru_maxrss would also carry the parent's (pytest's) peak
# across fork and exec on Linux.
_PEAK_SCRIPT = """
import re, sys
from pathlib import Path
from emviewer.core.io import open_volume
volume = open_volume(sys.argv[1])
grey = volume.slice(0)
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(grey.shape, grey.dtype, int(grey.min()), int(grey.max()), peak_kb // 1024)
"""


def test_8192_rgb_png_of_200kb_reads_in_bounded_memory(tmp_path):
    """The 'RGB bomb' of issue 17: once 2.5-3.4 GB of memory through a float64 copy."""
    path = tmp_path / "bomb.png"
    Image.new("RGB", (8192, 8192), (120, 130, 140)).save(path, compress_level=9)
    assert path.stat().st_size < 400_000
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    shape, peak_mb = result.stdout.rsplit(" ", 1)
    assert shape == "(8192, 8192) uint8 128 128"  # round(0.299*120 + 0.587*130 + 0.114*140)
    assert int(peak_mb) < 1000, f"reading the 8192 x 8192 RGB PNG took {peak_mb} MB at peak"


def test_decoded_bytes_count_samples_and_bytes_per_sample(tmp_path):
    """A folder slice whose header claims over the budget is refused before any decoding.

    tifffile.memmap writes a real 1.2 GB RGB TIFF as a sparse file, so nothing is allocated.
    """
    folder = tmp_path / "slices"
    folder.mkdir()
    big = tifffile.memmap(folder / "s0.tif", shape=(20000, 20000, 3), dtype=np.uint8, photometric="rgb")
    del big
    with pytest.raises(
        ImageContentError, match=r"s0\.tif: one slice decodes to 20000 x 20000 pixels x 3 samples x 1 bytes = 1\.12 GiB"
    ):
        open_volume(folder)
    check_decoded_size((32768, 32768), 1, 1, "grey.png")  # 1 GiB of uint8 is the limit: allowed
    with pytest.raises(ImageContentError, match=r"wide\.png: .* 2 bytes"):
        check_decoded_size((32768, 32768), 1, 2, "wide.png")
    assert MAX_DECODED_SLICE_BYTES == 2**30


def _png_header_only(path, width, height, depth, colour_type):
    """A PNG whose IHDR claims a size and whose pixels are missing: what a hostile upload holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def test_png_over_the_budget_is_refused_from_its_header(tmp_path):
    """16-bit RGB counts 6 bytes a pixel although Pillow reports it as 8-bit RGB."""
    _png_header_only(tmp_path / "rgb16.png", 16000, 16000, 16, 2)
    with pytest.raises(
        ImageContentError,
        match=r"rgb16\.png: one slice decodes to 16000 x 16000 pixels x 3 samples x 2 bytes = 1\.43 GiB",
    ):
        open_volume(tmp_path / "rgb16.png")
    _png_header_only(tmp_path / "grey16.png", 4000, 4000, 16, 0)  # 32 MB: passes the budget,
    with pytest.raises(InputError, match=r"grey16\.png: (not a readable|cannot decode)"):  # then fails to decode
        open_volume(tmp_path / "grey16.png")


def test_grey_conversion_in_blocks_matches_the_whole_image_rule():
    rng = np.random.default_rng(17)
    rgb = rng.integers(0, 256, size=(1100, 1000, 3), dtype=np.uint8)  # over one block of 2**20 pixels
    expected = np.clip(np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_grey(rgb), expected)
    stack = rng.integers(0, 65536, size=(2, 1100, 1000, 4), dtype=np.uint16)
    np.testing.assert_array_equal(to_grey(stack)[1], to_grey(stack[1]))
    wide = rng.random((3, 2_200_000, 3), dtype=np.float32)  # one row over a block: split further
    np.testing.assert_allclose(to_grey(wide), wide @ np.float32([0.299, 0.587, 0.114]), rtol=1e-6)


# ---------------------------------------------------------------- exact values


def test_16bit_png_keeps_every_value(tmp_path, ramp16):
    Image.fromarray(ramp16).save(tmp_path / "pillow.png")
    (tmp_path / "libpng.png").write_bytes(imagecodecs.png_encode(ramp16))
    for name in ("pillow.png", "libpng.png"):
        volume = open_volume(tmp_path / name)
        assert volume.dtype == np.uint16
        np.testing.assert_array_equal(volume.slice(0), ramp16)


def test_16bit_grey_alpha_and_rgb_png_are_not_cut_to_8_bits(tmp_path, ramp16):
    """Pillow opens these as 8-bit LA / RGB / RGBA; they must come back as uint16."""
    alpha = np.full_like(ramp16, 65535)
    files = {
        "la.png": np.stack([ramp16, alpha], -1),
        "rgb.png": np.stack([ramp16] * 3, -1),
        "rgba.png": np.stack([ramp16] * 3 + [alpha // 2], -1),
    }
    for name, pixels in files.items():
        (tmp_path / name).write_bytes(imagecodecs.png_encode(pixels))
        volume = open_volume(tmp_path / name)
        assert volume.dtype == np.uint16, name
        np.testing.assert_array_equal(volume.slice(0), ramp16, err_msg=name)
    colours = np.stack([ramp16, ramp16 // 2, ramp16 // 3], -1)
    (tmp_path / "colours.png").write_bytes(imagecodecs.png_encode(colours))
    np.testing.assert_array_equal(open_volume(tmp_path / "colours.png").slice(0), to_grey(colours))
    np.testing.assert_array_equal(open_volume(tmp_path / "colours.png", ReadOptions(channel=1)).slice(0), ramp16 // 2)
    with pytest.raises(InputError, match=r"colours\.png: --channel 3 is out of range"):
        open_volume(tmp_path / "colours.png", ReadOptions(channel=3))


def test_big_endian_tiff_slices_read_exactly_and_write_16bit_png(tmp_path, ramp16):
    folder = tmp_path / "be"
    folder.mkdir()
    for z in range(3):
        tifffile.imwrite(folder / f"s{z}.tif", (ramp16 + z).astype(">u2"), byteorder=">")
    volume = open_volume(folder)
    assert volume.dtype == np.uint16 and volume.dtype.isnative
    np.testing.assert_array_equal(volume.slice(2), ramp16 + 2)
    out = [tmp_path / "out0.png"]
    write_slices(out, [(ramp16 + 2).astype(">u2")])
    np.testing.assert_array_equal(np.asarray(Image.open(out[0])), ramp16 + 2)


def test_palette_and_one_bit_keep_their_values_and_grey_alpha_drops_alpha(tmp_path):
    labels = (np.arange(40 * 50).reshape(40, 50) % 5).astype(np.uint8)
    Image.fromarray(labels).quantize(5).save(tmp_path / "palette.png")
    indices = np.asarray(Image.open(tmp_path / "palette.png"))
    np.testing.assert_array_equal(open_volume(tmp_path / "palette.png").slice(0), indices)
    Image.fromarray(labels > 2).save(tmp_path / "binary.png")
    binary = open_volume(tmp_path / "binary.png")
    assert binary.dtype == np.uint8 and set(np.unique(binary.slice(0))) == {0, 1}
    Image.fromarray(np.stack([labels * 50, labels], -1), "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(open_volume(tmp_path / "la.png").slice(0), labels * 50)


def test_folder_of_mixed_pixel_formats_is_refused(tmp_path, ramp16):
    Image.fromarray((ramp16 >> 8).astype(np.uint8)).save(tmp_path / "a1.png")
    Image.fromarray(ramp16).save(tmp_path / "a2.png")
    with pytest.raises(ImageContentError, match=r"a2\.png: pixel format I;16 differs from a1\.png \(L\)"):
        open_volume(tmp_path)


# ---------------------------------------------------------------- pixel size


def test_png_phys_and_jpeg_dpi_give_pixel_size_but_screen_defaults_do_not(tmp_path):
    image = Image.fromarray(np.zeros((32, 32), np.uint8))
    image.save(tmp_path / "em.png", dpi=(25.4e6 / 5, 25.4e6 / 4))  # 5 nm x, 4 nm y: pHYs in pixels per metre
    volume = open_volume(tmp_path / "em.png")
    assert volume.pixel_size == (None, 4.0, 5.0)
    assert volume.metadata["pixel_size_from"] == "PNG pHYs (pixels per metre)"
    image.save(tmp_path / "coarse.jpg", dpi=(2540, 2540))  # 10 µm pixels
    assert open_volume(tmp_path / "coarse.jpg").pixel_size == (None, 10000.0, 10000.0)
    for dpi, suffix in ((72, "png"), (96, "png"), (72, "jpg"), (96, "jpg")):
        image.save(tmp_path / f"screen{dpi}.{suffix}", dpi=(dpi, dpi))
        screen = open_volume(tmp_path / f"screen{dpi}.{suffix}")
        assert screen.pixel_size is None and "pixel_size_from" not in screen.metadata
    image.save(tmp_path / "none.png")
    assert open_volume(tmp_path / "none.png").pixel_size is None
    assert dpi_to_nm(72.009) is None and dpi_to_nm(0) is None and dpi_to_nm(float("nan")) is None


def _tiff_folder(tmp_path, name, **kwargs):
    folder = tmp_path / name
    folder.mkdir()
    for z in range(2):
        tifffile.imwrite(folder / f"slice{z}.tif", np.full((16, 24), z, np.uint8), **kwargs)
    return open_volume(folder)


def test_tiff_slices_take_the_first_files_calibration(tmp_path):
    fiji = _tiff_folder(tmp_path, "fiji", imagej=True, resolution=(1 / 0.007, 1 / 0.007), metadata={"unit": "micron"})
    assert fiji.pixel_size == (None, 7.0, 7.0)
    assert fiji.metadata["pixel_size_from"] == "ImageJ resolution/unit of slice0.tif"
    nm = _tiff_folder(tmp_path, "nm", imagej=True, resolution=(1 / 4.0, 1 / 5.0), metadata={"unit": "nm"})
    assert nm.pixel_size == (None, 5.0, 4.0)
    cm = _tiff_folder(tmp_path, "cm", resolution=(1e6, 1e6), resolutionunit="CENTIMETER")  # 10 nm
    assert cm.pixel_size == (None, 10.0, 10.0) and cm.metadata["pixel_size_from"].startswith(
        "TIFF resolution tags (centimeter)"
    )
    assert _tiff_folder(tmp_path, "inch72", resolution=(72, 72), resolutionunit="INCH").pixel_size is None
    assert _tiff_folder(tmp_path, "plain").pixel_size is None
    uncalibrated = _tiff_folder(tmp_path, "pixel", imagej=True, resolution=(1, 1), metadata={"unit": "pixel"})
    assert uncalibrated.pixel_size is None


# ---------------------------------------------------------------- refusals name the file


def test_tiff_stack_in_a_folder_is_refused_not_cut_to_its_first_page(tmp_path):
    tifffile.imwrite(tmp_path / "s1.tif", np.zeros((5, 16, 16), np.uint8))
    tifffile.imwrite(tmp_path / "s2.tif", np.zeros((5, 16, 16), np.uint8))
    with pytest.raises(ImageContentError, match=r"s1\.tif: holds a stack \(Q=5"):
        open_volume(tmp_path)


def test_channels_need_a_choice_and_unknown_colour_modes_are_refused(tmp_path):
    tifffile.imwrite(
        tmp_path / "c0.tif",
        np.stack([np.zeros((8, 8), np.uint16), np.full((8, 8), 9, np.uint16)]),
        imagej=True,
        metadata={"axes": "CYX"},
    )
    with pytest.raises(ImageContentError, match=r"c0\.tif: has 2 channels .* --channel N"):
        open_volume(tmp_path)
    assert open_volume(tmp_path, ReadOptions(channel=1)).slice(0).tolist() == [[9] * 8] * 8
    cmyk = tmp_path / "print.jpg"
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(cmyk)
    with pytest.raises(ImageContentError, match=r"print\.jpg: colour mode CMYK cannot be read as grey"):
        open_volume(cmyk)


@pytest.mark.parametrize("name", ["broken.png", "broken.jpg"])
def test_damaged_images_are_refused_by_name(tmp_path, name):
    good = tmp_path / f"good{name[-4:]}"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64).astype(np.uint8)).save(good)
    bad = tmp_path / name
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(InputError, match=rf"{name.replace('.', r'[.]')}: "):
        open_volume(bad).read()
    (tmp_path / "noise.png").write_bytes(json.dumps({"not": "an image"}).encode())
    with pytest.raises(InputError, match=r"noise\.png: not a readable image"):
        open_volume(tmp_path / "noise.png")
