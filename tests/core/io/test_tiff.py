"""TIFF reading and writing: every series and page layout, codec, byte order and calibration
that tifffile writes (as Fiji, OME and microscope software do) reads exactly or is refused
with a message naming the file; the ImageJ writer keeps the voxel size."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from emviewer.core.errors import InputError, UnreadableFileError
from emviewer.core.io import ReadOptions, open_volume, split_dataset
from emviewer.core.io.common import MAX_DECODED_SLICE_BYTES
from emviewer.core.io.mapped import MappedArray
from emviewer.core.io.tiff import TiffPages, write_tiff


@pytest.fixture
def stack(cdeep3m):
    """Four real SBEM slices (images.010-013), cropped to (4, 160, 192) uint8."""
    files = sorted((cdeep3m / "training" / "images").glob("images.01[0-3].png"))
    return np.stack([np.asarray(Image.open(f))[200:360, 300:492] for f in files])


def read(spec, **options) -> np.ndarray:
    with open_volume(spec, ReadOptions(**options)) as volume:
        return volume.read()


# ---------------------------------------------------------------------------- layouts


def test_multipage_tiff_is_memory_mapped(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True)  # tifffile's ImageJ writer calls a 3D array channels
    volume = open_volume(path)
    assert isinstance(volume.data, MappedArray)
    np.testing.assert_array_equal(volume.read(), stack)
    volume.close()


def test_compressed_tiff_is_read_page_by_page(tmp_path, stack):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, compression="zlib", photometric="minisblack")
    with open_volume(path) as volume:
        assert not isinstance(volume.data, MappedArray)
        np.testing.assert_array_equal(volume.slice(2), stack[2])
        np.testing.assert_array_equal(volume[1:3], stack[1:3])
        np.testing.assert_array_equal(volume[3, 5:9, ::7], stack[3, 5:9, ::7])


@pytest.mark.parametrize("reduced", [True, False])
def test_preview_page_first_is_skipped(tmp_path, stack, reduced):
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tif:
        if reduced:  # marked as a reduced image (NewSubfileType 1), as some microscopes write it
            tif.write(stack[0, ::4, ::4], photometric="minisblack", subfiletype=1)
        else:  # an unmarked RGB thumbnail
            tif.write(np.zeros((32, 32, 3), np.uint8), photometric="rgb")
        tif.write(stack, compression="zlib", photometric="minisblack")
    with open_volume(path) as volume:
        assert volume.metadata["series"] == 1
        np.testing.assert_array_equal(volume.read(), stack)
    assert read(f"{path}:series=0").shape[0] == 1


def test_series_is_chosen_by_name_or_refused_with_the_list(tmp_path, stack):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(stack[:2], photometric="minisblack")
        tif.write(stack[1:, :64, :80], photometric="minisblack")
    assert split_dataset(f"{path}:series=1") == (path, "series=1")
    np.testing.assert_array_equal(read(path), stack[:2])  # the larger 3D series
    with open_volume(f"{path}:series=1") as volume:
        assert volume.source.endswith("two.tif:series=1")
        np.testing.assert_array_equal(volume.read(), stack[1:, :64, :80])
    with pytest.raises(
        InputError,
        match=r"two\.tif: has no series 2; its series are 0: QYX \(2, 160, 192\) uint8; 1: QYX \(3, 64, 80\)",
    ):
        open_volume(f"{path}:series=2")
    with pytest.raises(InputError, match=r"two\.tif: cannot read 'series=x'"):
        open_volume(f"{path}:series=x")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_pages_appended_one_by_one_are_one_stack(tmp_path, stack, compression):
    path = tmp_path / "appended.tif"
    for plane in stack:
        tifffile.imwrite(path, plane, append=True, compression=compression)
    assert len(tifffile.TiffFile(path).series) == 4  # what tifffile makes of it
    with open_volume(path) as volume:
        assert volume.shape == stack.shape and volume.metadata["series"] == [0, 1, 2, 3]
        np.testing.assert_array_equal(volume.read(), stack)
        np.testing.assert_array_equal(volume.slice(2), stack[2])


@pytest.mark.parametrize("depth", [3, 4])
def test_slices_stored_as_planes_of_one_page(tmp_path, stack, depth):
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, stack[:depth], photometric="minisblack", planarconfig="separate")
    assert len(tifffile.TiffFile(path).pages) == 1
    with open_volume(path) as volume:
        assert volume.metadata["axes"] == "ZYX"
        np.testing.assert_array_equal(volume.read(), stack[:depth])


def test_volumetric_tile_depth_page(tmp_path, stack):
    path = tmp_path / "volume.tif"
    tifffile.imwrite(path, stack, tile=(2, 64, 64), volumetric=True, photometric="minisblack", compression="zlib")
    assert tifffile.TiffFile(path).pages.first.imagedepth == 4
    with open_volume(path) as volume:
        assert isinstance(volume.data, TiffPages)
        np.testing.assert_array_equal(volume.read(), stack)


@pytest.mark.filterwarnings("ignore:.*stored as RGB with separate component planes:DeprecationWarning")
@pytest.mark.parametrize("depth", [3, 4, 7])
def test_tiled_zlib_bigtiff(tmp_path, stack, depth):
    # tifffile marks a (3 | 4, Y, X) array written without photometric as separate RGB planes
    data = np.concatenate([stack, stack[::-1]])[:depth]
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, bigtiff=True, tile=(64, 64), compression="zlib")
    np.testing.assert_array_equal(read(path), data)


def test_rgb_pages_become_grey_unless_a_channel_is_chosen(tmp_path, stack):
    rgb = np.stack([stack[:2], stack[:2] // 2, stack[:2] // 4], axis=-1)
    contig, planar = tmp_path / "rgb.tif", tmp_path / "planar_rgb.tif"
    tifffile.imwrite(contig, rgb, photometric="rgb", compression="lzw")
    tifffile.imwrite(
        planar, np.moveaxis(rgb[0], -1, 0), photometric="rgb", planarconfig="separate", metadata={"axes": "SYX"}
    )
    grey = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    np.testing.assert_array_equal(read(contig), grey)
    np.testing.assert_array_equal(read(contig, channel=1), stack[:2] // 2)
    np.testing.assert_array_equal(read(planar), grey[:1])
    np.testing.assert_array_equal(read(planar, channel=2), stack[:1] // 4)


def test_imagej_hyperstack_axes(tmp_path, stack):
    data = np.stack([stack, stack // 2], axis=1)[np.newaxis]  # T=1, Z=4, C=2
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, compression="zlib", metadata={"axes": "TZCYX"})
    with pytest.raises(InputError, match=r"hyper\.tif: has 2 channels \(axes ZCYX.*--channel N"):
        open_volume(path)
    with open_volume(path, ReadOptions(channel=1)) as volume:
        assert volume.metadata["axes"] == "ZCYX"
        np.testing.assert_array_equal(volume.read(), stack // 2)


def test_axes_option_overrides_the_file(tmp_path, stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")  # tifffile's axes: QYX
    with pytest.raises(InputError, match=r"plain\.tif: has 4 channels \(axes CYX"):
        open_volume(path, ReadOptions(axes="CYX"))
    with open_volume(path, ReadOptions(axes="cyx", channel=2)) as volume:
        assert volume.metadata["axes"] == "cyx"
        np.testing.assert_array_equal(volume.read(), stack[2:3])


def test_imagej_time_series_of_stacks_is_refused(tmp_path, stack):
    path = tmp_path / "tzyx.tif"
    tifffile.imwrite(path, np.stack([stack, stack]), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match=r"tzyx\.tif: holds a 4D series \(T=2, Z=4"):
        open_volume(path)


# ---------------------------------------------------------------------------- codecs, byte order


@pytest.mark.parametrize("compression", ["lzw", "zstd", "adobe_deflate", "packbits", "zlib", "lzma"])
def test_lossless_codecs_read_exactly(tmp_path, stack, compression):
    path = tmp_path / f"{compression}.tif"
    data = stack.astype(np.uint16) * 250
    tifffile.imwrite(path, data, compression=compression, photometric="minisblack", predictor=compression == "zstd")
    np.testing.assert_array_equal(read(path), data)


def test_jpeg_tiff_reads_what_the_codec_decodes(tmp_path, stack):
    path = tmp_path / "jpeg.tif"
    tifffile.imwrite(path, stack, compression="jpeg", photometric="minisblack")
    got = read(path)
    np.testing.assert_array_equal(got, tifffile.imread(path))
    assert np.abs(got.astype(int) - stack).mean() < 4


def test_big_endian_imagej_stack_reads_exact_values(tmp_path, stack):
    data = stack.astype(np.uint16) * 257
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, data.astype(">u2"), imagej=True, byteorder=">")
    assert tifffile.TiffFile(path).byteorder == ">"
    np.testing.assert_array_equal(read(path), data)
    compressed = tmp_path / "be_zlib.tif"
    tifffile.imwrite(compressed, data.astype(">u2"), byteorder=">", compression="zlib", photometric="minisblack")
    np.testing.assert_array_equal(read(compressed), data)


# ---------------------------------------------------------------------------- refusals


def test_tiff_header_with_no_image_is_refused_by_name(tmp_path):
    bad = tmp_path / "stack.tif"
    bad.write_bytes(b"II*\x00" + b"\x07" * 500)  # found by the server tests: once an IndexError
    with pytest.raises(InputError, match=r"stack\.tif: not a readable TIFF file"):
        open_volume(bad)


@pytest.mark.parametrize("kind", ["imagej", "imagej-zlib", "zlib", "ome-zlib", "tiled", "appended"])
def test_truncated_files_are_refused(tmp_path, stack, kind):
    path = tmp_path / "cut.tif"
    data = np.random.default_rng(1).integers(0, 255, stack.shape, np.uint8)
    options = {
        "imagej": {"imagej": True},
        "imagej-zlib": {"imagej": True, "compression": "zlib"},
        "zlib": {"compression": "zlib", "photometric": "minisblack"},
        "ome-zlib": {"ome": True, "compression": "zlib", "metadata": {"axes": "ZYX"}},
        "tiled": {"tile": (64, 64), "photometric": "minisblack"},
        "appended": {"append": True, "compression": "zlib"},
    }[kind]
    for plane in data if kind == "appended" else [data]:
        tifffile.imwrite(path, plane, **options)
    whole = path.read_bytes()
    for fraction in (0.5, 0.7, 0.9):
        path.write_bytes(whole[: int(len(whole) * fraction)])
        with pytest.raises(UnreadableFileError, match=r"cut\.tif: the file is truncated or damaged"):
            open_volume(path)


def test_pages_lost_after_a_whole_page_are_noticed(tmp_path, stack):
    path = tmp_path / "cut.tif"
    for plane in stack:
        tifffile.imwrite(path, plane, append=True, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        cut = tif.pages[3].offset  # pages 0-2 stay whole; page 2 still points to page 3
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(
        UnreadableFileError, match=r"cut\.tif: the file is truncated or damaged: the page after page 2 cannot be read"
    ):
        open_volume(path)


def test_damaged_page_is_named_when_it_fails_to_decode(tmp_path, stack):
    path = tmp_path / "damaged.tif"
    tifffile.imwrite(path, stack, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        start, count = tif.pages[2].dataoffsets[0], tif.pages[2].databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[start : start + count] = b"\x55" * count
    path.write_bytes(bytes(raw))
    with open_volume(path) as volume:
        np.testing.assert_array_equal(volume.slice(1), stack[1])
        with pytest.raises(UnreadableFileError, match=r"damaged\.tif: cannot decode page 2 \("):
            volume.slice(2)


def test_decoded_size_counts_samples_before_decoding(tmp_path):
    path = tmp_path / "claims.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), photometric="rgb", compression="zlib")
    y, x = 20000, 30000  # 600 M pixels: under the pixel limit, but 3 samples make 1.8 GB
    assert y * x * 3 > MAX_DECODED_SLICE_BYTES > y * x
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tags = tif.pages.first.tags
        tags["ImageWidth"].overwrite(x)
        tags["ImageLength"].overwrite(y)
        tags["RowsPerStrip"].overwrite(y)
    with pytest.raises(InputError, match=r"claims\.tif: one slice decodes to 30000 x 20000 pixels x 3 samples"):
        open_volume(path)


# ---------------------------------------------------------------------------- pixel size


def test_fiji_calibration_is_read(tmp_path, stack):
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.007, 1 / 0.007),
        metadata={"spacing": 0.05, "unit": "um", "axes": "ZYX"},
    )
    with open_volume(path) as volume:
        assert volume.pixel_size == (50.0, 7.0, 7.0)
        assert volume.metadata["pixel_size_from"] == "ImageJ resolution/unit and spacing"
        assert volume.metadata["axes"] == "ZYX"


@pytest.mark.parametrize(
    "unit, resolution, spacing, expected",
    [
        ("micron", 200.0, 0.04, (40.0, 5.0, 5.0)),
        ("\\u00B5m", 200.0, 0.04, (40.0, 5.0, 5.0)),  # ImageJ escapes µ in the description
        ("nm", 0.25, 30, (30.0, 4.0, 4.0)),
        ("mm", 1e5, None, (None, 10.0, 10.0)),
        ("pixel", 1.0, 1.0, None),
    ],
)
def test_imagej_units(tmp_path, stack, unit, resolution, spacing, expected):
    path = tmp_path / "unit.tif"
    metadata = {"unit": unit, "axes": "ZYX", **({"spacing": spacing} if spacing else {})}
    tifffile.imwrite(path, stack, imagej=True, resolution=(resolution, resolution), metadata=metadata)
    with open_volume(path) as volume:
        assert volume.pixel_size == expected


def test_ome_tiff_physical_size(tmp_path, stack):
    path = tmp_path / "stack.ome.tif"
    sizes = {
        "PhysicalSizeX": 7,
        "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 8,
        "PhysicalSizeYUnit": "nm",
        "PhysicalSizeZ": 0.05,
    }
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "ZYX", **sizes})  # Z in the default unit, µm
    with open_volume(path) as volume:
        assert volume.pixel_size == (50.0, 8.0, 7.0)
        assert volume.metadata["pixel_size_from"] == "OME-XML PhysicalSize"


@pytest.mark.parametrize("unit, expected", [("CENTIMETER", 5.0), ("INCH", 12.7), ("NONE", None)])
def test_resolution_tags(tmp_path, stack, unit, expected):
    path = tmp_path / "res.tif"
    per_unit = {"CENTIMETER": 2e6, "INCH": 2e6, "NONE": 2e6}[unit]
    tifffile.imwrite(path, stack, resolution=(per_unit, per_unit), resolutionunit=unit, photometric="minisblack")
    with open_volume(path) as volume:
        assert volume.pixel_size == (None if expected is None else (None, expected, expected))


def test_uncalibrated_tiff_has_no_pixel_size(tmp_path, stack):
    tifffile.imwrite(tmp_path / "plain.tif", stack, photometric="minisblack")
    Image.fromarray(stack[0]).save(tmp_path / "pillow.tif")  # no resolution tags: tifffile says 1 dpi
    Image.fromarray(stack[0]).save(tmp_path / "screen.tif", dpi=(96, 96))  # a screen default
    for name in ("plain.tif", "pillow.tif", "screen.tif"):
        with open_volume(tmp_path / name) as volume:
            assert volume.pixel_size is None and "pixel_size_from" not in volume.metadata


# ---------------------------------------------------------------------------- writer


@pytest.mark.parametrize("pixel_size", [(50.0, 7.0, 7.0), (None, 3.3, 4.1), None])
def test_written_voxel_size_reads_back(tmp_path, stack, pixel_size):
    path = tmp_path / "out.tif"
    write_tiff(path, iter(stack), stack.shape, stack.dtype, pixel_size=pixel_size)
    with open_volume(path) as volume:
        assert volume.pixel_size == pixel_size
        np.testing.assert_array_equal(volume.read(), stack)
    with tifffile.TiffFile(path) as tif:  # what Fiji reads: pixels per µm, unit, z spacing in µm
        meta = tif.imagej_metadata
        if pixel_size is None:
            assert "unit" not in meta
        else:
            assert meta["unit"] == "um" and tif.pages.first.resolution == pytest.approx(
                (1000 / pixel_size[2], 1000 / pixel_size[1])
            )
            assert meta.get("spacing") == (pixel_size[0] / 1000 if pixel_size[0] else None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="open files are read from /proc")
def test_closing_a_mapped_tiff_closes_the_file_even_with_slices_still_held(tmp_path, stack):
    """A slice handed out must not keep the file open (a deleted upload stayed open on the server)."""
    import os

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    volume = open_volume(path)
    held = volume.slice(1)

    def open_fds():
        return [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str(path)]

    assert open_fds()
    volume.close()
    assert open_fds() == [] and held.sum() == stack[1].sum()


def test_an_uncompressed_volume_larger_than_memory_opens_as_a_memory_map(tmp_path):
    """The seed's SBEM volume, 400 x 10000 x 16000 uint8 (64 GB; a sparse file here, more than
    this machine's memory): mapped and read where asked, never allocated whole."""

    path = tmp_path / "seed.tif"
    stack = tifffile.memmap(path, shape=(400, 10000, 16000), dtype=np.uint8, bigtiff=True, photometric="minisblack")
    stack[200, 5000:5002, :3] = [[1, 2, 3], [4, 5, 6]]
    stack.flush()
    del stack
    volume = open_volume(path)
    assert volume.shape == (400, 10000, 16000)
    np.testing.assert_array_equal(volume.rows(200, 5000, 5002)[:, :3], [[1, 2, 3], [4, 5, 6]])
