"""End-to-end tests of the command line: every bad input, and the happy paths, on real EM data.

Each bad input must end with exit status 2 and one line on stderr that names the offending
file and says what is wrong, and must leave nothing in the output folder (no file, no
``.part`` temporary). Bad inputs are made at test time from crops of real slices.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from argparse import _SubParsersAction
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from emviewer.cli import build_parser
from emviewer.config import installed_models

REPO = Path(__file__).resolve().parents[1]
OUTPUT_SUFFIXES = [".tif", ".png", ".h5", ".pdf"]
ALL_SUFFIXES = [".h5", ".png", ".jpg", ".tif", ".raw", ".pdf"]
TOO_LARGE = r"too large|more than .*pixels"
HEAVY_LIBRARIES = {"tensorflow", "keras", "PySide6", "pyqtgraph", "fastapi"}


def files_under(folder: Path) -> list[str]:
    """Every file and folder below ``folder`` (hidden ``.part`` files included), relative, sorted."""
    if not folder.exists():
        return []
    found = []
    for root, dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, n), folder) for n in dirs + files]
    return sorted(found)


def assert_refused(result, names, problem: str, folder: Path, before=()) -> str:
    """Exit 2, one stderr line naming each of ``names`` and matching ``problem``; ``folder`` unchanged."""
    code, _, err = result
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    message = lines[0]
    assert code == 2, f"exit status {code}: {message}"
    for name in names:
        assert name in message, f"{name!r} not named in: {message}"
    assert re.search(problem, message, re.IGNORECASE), f"no {problem!r} in: {message}"
    assert files_under(folder) == sorted(before), f"left behind: {files_under(folder)}"
    return message


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _cut_in_half(path: Path) -> Path:
    """Truncate a file to its first half, as an interrupted copy or download would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png_bytes(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking 8-bit grey PNG whose header claims ``width x height`` pixels, with a tiny IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def write_slices(folder: Path, slices, prefix: str = "s") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(slices):
        Image.fromarray(array).save(folder / f"{prefix}_{i}.png")
    return folder


def two_stack_hdf5(path: Path, em) -> Path:
    with h5py.File(path, "w") as h5:
        h5["first"] = np.stack(em)
        h5["second"] = np.stack(em[::-1])
    return path


@pytest.fixture(scope="module")
def em(cdeep3m) -> list[np.ndarray]:
    """Three 128x128 uint8 crops of real SBEM slices (training images.010-012)."""
    folder = cdeep3m / "training" / "images"
    return [read_png(folder / f"images.0{n}.png")[256:384, 256:384].copy() for n in (10, 11, 12)]


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def bad_dir(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


# ---------------------------------------------------------------------------- bad inputs to export
# Each builder makes one bad input in ``base`` and returns (input spec, names the message
# must contain, regular expression for the problem).


def missing_path(base, em):
    return base / "no_such_stack", ["no_such_stack"], r"no such file"


def empty_folder(base, em):
    (base / "empty_stack").mkdir()
    return base / "empty_stack", ["empty_stack"], r"empty"


def folder_without_images(base, em):
    folder = base / "notes_only"
    folder.mkdir()
    (folder / "readme.txt").write_text("the slices will go here\n")
    return folder, ["notes_only"], r"no PNG, TIFF or JPEG"


def unknown_file_type(base, em):
    (base / "notes.txt").write_text("not an image\n")
    return base / "notes.txt", ["notes.txt"], r"unknown file type"


def truncated_png(base, em):
    (base / "cut_slice.png").write_bytes(png_bytes(em[0]))
    return _cut_in_half(base / "cut_slice.png"), ["cut_slice.png"], r"truncated"


def garbage_tiff(base, em):
    noise = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (base / "garbage.tif").write_bytes(noise)
    return base / "garbage.tif", ["garbage.tif"], r"not a readable TIFF"


def truncated_tiff_page(base, em):
    tifffile.imwrite(base / "cut_page.tif", em[0])
    return _cut_in_half(base / "cut_page.tif"), ["cut_page.tif"], r"cannot decode|truncated|failed to read"


def truncated_tiff_stack(base, em):
    """A real uncompressed 3-slice TIFF cut in half: its metadata still says 3 slices."""
    tifffile.imwrite(base / "cut_stack.tif", np.stack(em), photometric="minisblack")
    return _cut_in_half(base / "cut_stack.tif"), ["cut_stack.tif"], r"cannot decode|truncated|failed to read"


def tiff_middle_overwritten(base, em):
    """A real zlib-compressed 3-page TIFF whose middle third is overwritten with 0xAB bytes."""
    path = base / "damaged.tif"
    tifffile.imwrite(path, np.stack(em), photometric="minisblack", compression="zlib")
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = b"\xab" * third
    path.write_bytes(bytes(data))
    return path, ["damaged.tif"], r"cannot decode|corrupt|damaged|not a readable"


def hdf5_only_1d(base, em):
    with h5py.File(base / "profile.h5", "w") as h5:
        h5["intensity"] = np.arange(100, dtype=np.float32)
    return base / "profile.h5", ["profile.h5"], r"no 2D or 3D dataset"


def hdf5_two_stacks(base, em):
    path = two_stack_hdf5(base / "two_stacks.h5", em)
    return path, ["two_stacks.h5", "/first", "/second"], r"several"


def slices_of_different_sizes(base, em):
    folder = write_slices(base / "mixed_sizes", [em[0], em[1][:, :96]])
    return folder, ["mixed_sizes", "s_1.png"], r"size"


def huge_png_header(base, em):
    (base / "huge_header.png").write_bytes(huge_png_bytes())
    return base / "huge_header.png", ["huge_header.png"], TOO_LARGE


def huge_tiff_header(base, em):
    """A hand-made TIFF whose first IFD claims 100000 x 100000 8-bit pixels in one strip."""
    data_offset = 8 + 2 + 8 * 12 + 4
    tags = [
        (256, 4, 100_000),
        (257, 4, 100_000),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, data_offset),
        (278, 4, 100_000),
        (279, 4, 64),
    ]
    ifd = (
        struct.pack("<H", len(tags))
        + b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
        + struct.pack("<I", 0)
    )
    (base / "huge_header.tif").write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 64)
    return base / "huge_header.tif", ["huge_header.tif"], TOO_LARGE


def slices_of_different_bit_depths(base, em):
    folder = write_slices(base / "mixed_depths", [em[0]])
    Image.fromarray(em[1].astype(np.uint16) * 200).save(folder / "s_1.png")
    return folder, ["mixed_depths", "s_1.png"], r"differs"


def complex_hdf5(base, em):
    with h5py.File(base / "complex.h5", "w") as h5:
        h5["fft"] = np.stack(em).astype(np.complex64)
    return base / "complex.h5", ["complex.h5"], r"unsupported pixel type complex64"


def complex_tiff(base, em):
    tifffile.imwrite(base / "complex.tif", np.stack(em).astype(np.complex64), photometric="minisblack")
    return base / "complex.tif", ["complex.tif"], r"unsupported pixel type complex64"


BAD_INPUTS = [
    missing_path,
    empty_folder,
    folder_without_images,
    unknown_file_type,
    truncated_png,
    garbage_tiff,
    truncated_tiff_page,
    truncated_tiff_stack,
    tiff_middle_overwritten,
    hdf5_only_1d,
    hdf5_two_stacks,
    slices_of_different_sizes,
    slices_of_different_bit_depths,
    huge_png_header,
    huge_tiff_header,
    complex_hdf5,
    complex_tiff,
]


@pytest.mark.parametrize("suffix", OUTPUT_SUFFIXES)
@pytest.mark.parametrize("build", BAD_INPUTS, ids=lambda f: f.__name__)
def test_bad_input_is_refused_with_one_line_naming_the_file(build, suffix, em, bad_dir, out_dir, run_cli):
    spec, names, problem = build(bad_dir, em)
    result = run_cli("export", spec, "-o", out_dir / f"out{suffix}")
    assert_refused(result, names, problem, out_dir)


def test_truncated_compressed_tiff_stack_is_refused(em, bad_dir, out_dir, run_cli):
    path = bad_dir / "cut_compressed.tif"
    tifffile.imwrite(path, np.stack(em), photometric="minisblack", compression="zlib")
    result = run_cli("export", _cut_in_half(path), "-o", out_dir / "out.tif")
    assert_refused(result, ["cut_compressed.tif"], r"cannot decode|truncated|corrupt", out_dir)


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_truncated_slice_inside_a_folder_fails_during_export_and_leaves_nothing(suffix, em, bad_dir, out_dir, run_cli):
    """Headers all read, so the damage shows only while slices are written: all of it must go."""
    folder = write_slices(bad_dir / "stack", em)
    (folder / "s_3.png").write_bytes(png_bytes(em[0]))
    _cut_in_half(folder / "s_3.png")
    result = run_cli("export", folder, "-o", out_dir / f"out{suffix}")
    assert_refused(result, ["s_3.png"], r"truncated", out_dir)


def test_failed_export_keeps_an_existing_output_unchanged(em, bad_dir, out_dir, run_cli):
    folder = write_slices(bad_dir / "stack", em)
    (folder / "s_3.png").write_bytes(png_bytes(em[0]))
    _cut_in_half(folder / "s_3.png")
    (out_dir / "out.tif").write_bytes(b"an earlier result")
    result = run_cli("export", folder, "-o", out_dir / "out.tif")
    assert_refused(result, ["s_3.png"], r"truncated", out_dir, before=["out.tif"])
    assert (out_dir / "out.tif").read_bytes() == b"an earlier result"


def test_real_process_prints_one_line_and_exits_2(em, bad_dir, out_dir):
    """Outside pytest's capture too: no log lines or warnings from libraries on stderr."""
    (bad_dir / "cut_slice.png").write_bytes(png_bytes(em[0]))
    _cut_in_half(bad_dir / "cut_slice.png")
    command = [
        sys.executable,
        "-m",
        "emviewer",
        "export",
        str(bad_dir / "cut_slice.png"),
        "-o",
        str(out_dir / "out.h5"),
    ]
    proc = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "EMVIEWER_DEBUG": ""}
    )
    assert_refused((proc.returncode, proc.stdout, proc.stderr), ["cut_slice.png"], r"truncated", out_dir)


@pytest.mark.parametrize("suffix", [".h5", ".png", ".pdf"])
def test_truncated_mask_slice_fails_during_export_and_leaves_nothing(suffix, em, bad_dir, out_dir, run_cli):
    images = write_slices(bad_dir / "stack", em)
    masks = write_slices(bad_dir / "masks", [np.where(a > 128, 255, 0).astype(np.uint8) for a in em], prefix="m")
    _cut_in_half(masks / "m_2.png")
    result = run_cli("export", images, "--mask", masks, "-o", out_dir / f"out{suffix}")
    assert_refused(result, ["m_2.png"], r"truncated", out_dir)


def test_mask_of_another_shape_is_refused(em, bad_dir, out_dir, run_cli):
    images = write_slices(bad_dir / "stack", em)
    masks = write_slices(
        bad_dir / "short_masks", [np.where(a[:100] > 128, 255, 0).astype(np.uint8) for a in em], prefix="m"
    )
    result = run_cli("export", images, "--mask", masks, "-o", out_dir / "out.h5")
    assert_refused(result, ["short_masks", "(3, 100, 128)", "(3, 128, 128)"], r"shape", out_dir)


def test_unknown_output_format_is_refused(em, bad_dir, out_dir, run_cli):
    images = write_slices(bad_dir / "stack", em)
    result = run_cli("export", images, "-o", out_dir / "out.bmp")
    assert_refused(result, ["out.bmp"], r"cannot export to \.bmp", out_dir)


def test_huge_png_header_is_refused_from_the_header_alone(bad_dir, out_dir, run_cli):
    """100000 x 100000 pixels would need 10 GB: the header alone must be enough to refuse it."""
    (bad_dir / "huge_header.png").write_bytes(huge_png_bytes())
    result = run_cli("export", bad_dir / "huge_header.png", "-o", out_dir / "out.tif")
    # Our size message, not Pillow's decompression-bomb error or a failed 10 GB allocation.
    message = assert_refused(result, ["huge_header.png"], TOO_LARGE, out_dir)
    assert "refus" in message


def test_huge_png_header_inside_a_folder_is_refused(em, bad_dir, out_dir, run_cli):
    folder = write_slices(bad_dir / "stack", em)
    (folder / "s_3.png").write_bytes(huge_png_bytes())
    result = run_cli("export", folder, "-o", out_dir / "out.h5")
    assert_refused(result, ["s_3.png"], TOO_LARGE, out_dir)


def test_hdf5_dataset_chosen_by_path_exports(em, bad_dir, out_dir, run_cli):
    path = two_stack_hdf5(bad_dir / "two_stacks.h5", em)
    code, out, err = run_cli("export", f"{path}:/second", "-o", out_dir / "out.tif")
    assert code == 0, err
    assert files_under(out_dir) == ["out.tif"]
    np.testing.assert_array_equal(tifffile.imread(out_dir / "out.tif"), np.stack(em[::-1]))


def test_hdf5_dataset_that_does_not_exist_is_named(em, bad_dir, out_dir, run_cli):
    path = two_stack_hdf5(bad_dir / "two_stacks.h5", em)
    result = run_cli("export", f"{path}:/third", "-o", out_dir / "out.tif")
    assert_refused(result, ["two_stacks.h5", "/third", "/first", "/second"], r"no dataset", out_dir)


# ---------------------------------------------------------------------------- bad inputs to evaluate


@pytest.fixture
def hela_pair(hela, make_crops):
    """Three real HeLa label patches (1/2/3) and nucleus masks (0/255) named ``mask_<slice>_<sample>``."""
    sources = [hela / "labels" / f"Hela_Label_Slice100_Sample_{n}.png" for n in (1, 7, 10)]
    labels = make_crops(sources, "hela_labels", size=None)
    masks = make_crops(
        sources,
        "hela_masks",
        size=None,
        name="mask_{nums[0]}_{nums[1]}",
        transform=lambda a: np.where(a == 2, 255, 0).astype(np.uint8),
    )
    return masks, labels


def test_predict_refuses_a_mask_stack_given_as_the_image(cdeep3m, tmp_path, run_cli):
    """Real CDeep3M label slices (0/255) passed where the EM image belongs: one line, exit 2, no output."""
    folder = tmp_path / "labels"
    folder.mkdir()
    for n in (50, 51):
        name = f"mitos_3D.0{n}.png"
        (folder / name).write_bytes((cdeep3m / "validation" / "labels" / name).read_bytes())
    before = files_under(tmp_path)
    result = run_cli("predict", str(folder), "--object", "mito", "-o", str(tmp_path / "out"))
    assert_refused(result, ["labels"], r"binary.*not a mask", tmp_path, before)


def test_label_with_three_values_needs_foreground(hela_pair, tmp_path, run_cli):
    masks, labels = hela_pair
    before = files_under(tmp_path)
    result = run_cli("evaluate", "--pred", masks, "--labels", labels)
    message = assert_refused(result, ["hela_labels", "Hela_Label_Slice100_Sample_1"], r"not binary", tmp_path, before)
    assert "1, 2, 3" in message and "--foreground" in message


def test_foreground_picks_the_object_in_a_class_map(hela_pair, run_cli):
    masks, labels = hela_pair
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", labels, "--foreground", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [row["name"] for row in result["per_image"]] == ["mask_100_1", "mask_100_7", "mask_100_10"]
    nucleus = sum(int((read_png(p) == 2).sum()) for p in sorted(labels.iterdir()))
    assert result["mean"]["f1"] == 1.0 and result["mean"]["tp"] == nucleus > 0


def test_image_and_label_of_different_shapes(cdeep3m, lucchi, make_crops, tmp_path, run_cli):
    masks = make_crops([lucchi / "labels" / "train_010.png"], "lucchi_masks", size=None)
    labels = make_crops([cdeep3m / "training" / "labels" / "mitos_3D.010.png"], "cdeep3m_labels", size=None)
    before = files_under(tmp_path)
    result = run_cli("evaluate", "--pred", masks, "--labels", labels)
    message = assert_refused(result, ["train_010", "mitos_3D.010"], r"shape", tmp_path, before)
    assert "(768, 1024)" in message and "(1024, 1024)" in message


def test_truncated_label_slice_is_named(cdeep3m, make_crops, tmp_path, run_cli):
    sources = [cdeep3m / "training" / "labels" / f"mitos_3D.0{n}.png" for n in (10, 11, 12)]
    labels = make_crops(sources, "labels")
    masks = make_crops(sources, "masks", name="pred_{num}", transform=lambda a: (a * 255).astype(np.uint8))
    _cut_in_half(labels / "mitos_3D.012.png")
    before = files_under(tmp_path)
    result = run_cli("evaluate", "--pred", masks, "--labels", labels)
    assert_refused(result, ["mitos_3D.012.png"], r"truncated", tmp_path, before)


def test_masks_and_labels_that_share_no_number(cdeep3m, make_crops, tmp_path, run_cli):
    sources = [cdeep3m / "training" / "labels" / f"mitos_3D.0{n}.png" for n in (10, 11, 12)]
    labels = make_crops(sources, "labels")
    masks = make_crops(sources, "masks", name="pred_1{num}", transform=lambda a: (a * 255).astype(np.uint8))
    before = files_under(tmp_path)
    result = run_cli("evaluate", "--pred", masks, "--labels", labels)
    assert_refused(result, [str(labels), "pred_1010"], r"no file pairs", tmp_path, before)


def test_em_image_given_as_prediction_is_refused(cdeep3m, make_crops, tmp_path, run_cli):
    sources = [
        cdeep3m / "training" / n / f"{stem}.0{k}.png"
        for n, stem in (("images", "images"), ("labels", "mitos_3D"))
        for k in (10, 11)
    ]
    images = make_crops(sources[:2], "em_images")
    labels = make_crops(sources[2:], "labels")
    before = files_under(tmp_path)
    result = run_cli("evaluate", "--pred", images, "--labels", labels)
    assert_refused(result, ["em_images", "images.010"], r"not binary", tmp_path, before)


def test_evaluate_with_missing_predictions(cdeep3m, tmp_path, run_cli):
    result = run_cli("evaluate", "--pred", tmp_path / "no_predictions", "--labels", cdeep3m / "training" / "labels")
    assert_refused(result, ["no_predictions"], r"no such file", tmp_path)


# ---------------------------------------------------------------------------- happy paths: export


@pytest.fixture
def validation_crops(cdeep3m, make_crops):
    """256x256 crops of validation images.050-052 and their labels (0/1; about 19 % mitochondria)."""
    images = make_crops(
        sorted((cdeep3m / "validation" / "images").glob("images.05[0-2].png")), "images", size=(256, 256)
    )
    labels = make_crops(
        sorted((cdeep3m / "validation" / "labels").glob("mitos_3D.05[0-2].png")), "labels", size=(256, 256)
    )
    stack = np.stack([read_png(p) for p in sorted(images.iterdir())])
    truth = np.stack([read_png(p) for p in sorted(labels.iterdir())])
    assert set(np.unique(truth)) == {0, 1}
    return images, labels, stack, truth


def _check_hdf5(out_dir, stack, truth):
    assert files_under(out_dir) == ["out.h5"]
    with h5py.File(out_dir / "out.h5", "r") as h5:
        np.testing.assert_array_equal(h5["raw"][:], stack)
        np.testing.assert_array_equal(h5["masks/mito"][:], truth.astype(np.uint8) * 255)


def _check_overlay_pixels(rgb, mask, lossless):
    """Grey off the mask, mitochondria magenta on it."""
    rgb = rgb.astype(int)
    red_over_green = rgb[..., 0] - rgb[..., 1]
    if lossless:
        assert (red_over_green[~mask] == 0).all() and (rgb[..., 1][~mask] == rgb[..., 2][~mask]).all()
        assert (red_over_green[mask] >= 80).all()
    else:
        assert np.abs(red_over_green[~mask]).mean() < 8 and red_over_green[mask].mean() > 60


def _check_overlays(out_dir, stack, truth, suffix):
    names = [f"out_images.05{n}{suffix}" for n in range(3)]
    assert files_under(out_dir) == names
    for name, mask in zip(names, truth.astype(bool), strict=True):
        rgb = read_png(out_dir / name)
        assert rgb.shape == stack.shape[1:] + (3,)
        _check_overlay_pixels(rgb, mask, lossless=suffix == ".png")


def _check_tiff(out_dir, stack, truth):
    """With masks, a TIFF holds the overlay as an RGB stack."""
    assert files_under(out_dir) == ["out.tif"]
    rgb = tifffile.imread(out_dir / "out.tif")
    assert rgb.shape == stack.shape + (3,)
    for plane, mask in zip(rgb, truth.astype(bool), strict=True):
        _check_overlay_pixels(plane, mask, lossless=True)


def _check_raw(out_dir, stack, truth):
    assert files_under(out_dir) == ["out.raw", "out.raw.json"]
    sidecar = json.loads((out_dir / "out.raw.json").read_text())
    assert (
        sidecar["shape"] == list(stack.shape) + [3] and sidecar["dtype"] == "uint8" and sidecar["axis_order"] == "ZYXC"
    )
    rgb = np.fromfile(out_dir / "out.raw", np.uint8).reshape(sidecar["shape"])
    for plane, mask in zip(rgb, truth.astype(bool), strict=True):
        _check_overlay_pixels(plane, mask, lossless=True)


def _check_pdf(out_dir, stack, truth):
    from pypdf import PdfReader

    assert files_under(out_dir) == ["out.pdf"]
    pages = PdfReader(out_dir / "out.pdf").pages
    assert len(pages) == 1 + len(stack)
    assert "images.051" in pages[2].extract_text()


EXPORT_CHECKS = {
    ".h5": _check_hdf5,
    ".png": lambda o, s, t: _check_overlays(o, s, t, ".png"),
    ".jpg": lambda o, s, t: _check_overlays(o, s, t, ".jpg"),
    ".tif": _check_tiff,
    ".raw": _check_raw,
    ".pdf": _check_pdf,
}


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_export_real_slices_with_label_masks(suffix, validation_crops, out_dir, run_cli):
    images, labels, stack, truth = validation_crops
    code, out, err = run_cli("export", images, "--mask", labels, "-o", out_dir / f"out{suffix}")
    assert code == 0, err
    assert out.startswith("wrote ")
    EXPORT_CHECKS[suffix](out_dir, stack, truth)


# ---------------------------------------------------------------------------- happy paths: evaluate


def test_labels_against_themselves_score_one_as_json(cdeep3m, run_cli):
    labels = cdeep3m / "validation" / "labels"
    code, out, err = run_cli("evaluate", "--pred", labels, "--labels", labels, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"per_image", "mean"}
    assert [row["name"] for row in result["per_image"]] == [f"mitos_3D.05{n}" for n in range(10)]
    assert result["mean"]["f1"] == 1.0 and result["mean"]["iou"] == 1.0 and result["mean"]["fp"] == 0


def test_zero_one_labels_meet_zero_255_masks_paired_by_number(cdeep3m, make_crops, run_cli):
    """Masks for 011-013 against all 20 labels (010-029): by position they would meet 010-012."""
    label_dir = cdeep3m / "training" / "labels"
    sources = [label_dir / f"mitos_3D.0{n}.png" for n in (11, 12, 13)]
    masks = make_crops(sources, "masks", size=None, name="pred_{num}", transform=lambda a: (a * 255).astype(np.uint8))
    assert set(np.unique(read_png(masks / "pred_011.png"))) == {0, 255}
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", label_dir, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [row["name"] for row in result["per_image"]] == ["pred_011", "pred_012", "pred_013"]
    assert all(row["f1"] == 1.0 and row["tp"] > 0 for row in result["per_image"])
    assert "17 label slice(s) without a partner" in err and "mitos_3D.010" in err


def test_isbi_membranes_with_invert(isbi, make_crops, run_cli):
    """ISBI labels mark membrane with 0: ``--invert`` makes it the object, to meet 255-membrane masks."""
    label_dir = isbi / "label"
    masks = make_crops(
        [label_dir / f"{n}.png" for n in (0, 1, 2)], "membrane_masks", size=None, transform=lambda a: 255 - a
    )
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", label_dir, "--invert", "--json")
    assert code == 0, err
    assert json.loads(out)["mean"]["f1"] == 1.0
    code, out, err = run_cli("evaluate", "--pred", masks, "--labels", label_dir, "--json")
    assert code == 0, err
    assert json.loads(out)["mean"]["f1"] == 0.0
    # the labels themselves, read as masks, mark cell interiors: the exact complement of membrane
    code, out, err = run_cli("evaluate", "--pred", label_dir, "--labels", label_dir, "--invert", "--json")
    assert code == 0, err
    mean = json.loads(out)["mean"]
    assert mean["tp"] == 0 and mean["fp"] + mean["fn"] == 30 * 512 * 512


def test_evaluate_prints_a_table_by_default(cdeep3m, run_cli):
    labels = cdeep3m / "validation" / "labels"
    code, out, err = run_cli("evaluate", "--pred", labels, "--labels", labels)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["image", "precision", "recall", "F1", "IoU"]
    assert len(lines) == 1 + 10 + 1 and lines[-1].split() == ["mean", "1.0000", "1.0000", "1.0000", "1.0000"]


# ---------------------------------------------------------------------------- help


def _subcommands() -> list[str]:
    actions = [a for a in build_parser()._actions if isinstance(a, _SubParsersAction)]
    return sorted(actions[0].choices) if actions else []


def test_documented_subcommands_exist():
    assert {"info", "export", "evaluate"} <= set(_subcommands())


def test_main_help(run_cli):
    code, out, err = run_cli("--help")
    assert code == 0, err
    assert out.startswith("usage: emviewer")
    for name in _subcommands():
        assert name in out


@pytest.mark.parametrize("command", _subcommands())
def test_subcommand_help(command, run_cli):
    code, out, err = run_cli(command, "--help")
    assert code == 0, err
    assert out.startswith(f"usage: emviewer {command}")


def test_help_loads_no_heavy_library():
    """Help is instant because no heavy library is imported for it (timed in no test: CI machines are noisy)."""
    proc = subprocess.run(
        [sys.executable, "-m", "emviewer", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: emviewer")
    snippet = (
        "import sys\n"
        "from emviewer.cli import main\n"
        f"for argv in [['--help']] + [[c, '--help'] for c in {_subcommands()!r}]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY_LIBRARIES)!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_train_from_an_unknown_model_is_refused(cdeep3m, tmp_path, run_cli):
    training = cdeep3m / "training"
    result = run_cli(
        "train",
        "--images",
        training / "images",
        "--labels",
        training / "labels",
        "--object",
        "mito",
        "--init-from",
        "no-such-model",
        "--out",
        tmp_path / "tuned.keras",
    )
    assert_refused(result, ["no-such-model"], r"unknown model", tmp_path)


def test_hard_mining_share_outside_0_to_1_is_refused(cdeep3m, tmp_path, run_cli):
    training = cdeep3m / "training"
    code, _, err = run_cli(
        "train",
        "--images",
        training / "images",
        "--labels",
        training / "labels",
        "--object",
        "mito",
        "--hard-mining",
        "1.5",
        "--out",
        tmp_path / "m.keras",
    )
    assert code == 2 and "--hard-mining: 1.5 is not between 0 and 1" in err
    assert not list(tmp_path.iterdir())


def test_info_says_which_precision_each_model_predicts_in_and_why(run_cli):
    code, out, _ = run_cli("info", "--json")
    assert code == 0
    info = json.loads(out)
    names = {e.name for e in installed_models()}
    assert set(info["model_precision"]) == names
    assert {p["policy"] for p in info["model_precision"].values()} <= {"float32", "mixed_bfloat16"}
    assert info["runtime"]["name"] in {"keras", "openvino"} and info["runtime"]["why"]
    code, out, _ = run_cli("info")
    assert code == 0 and all(f"  {name} predicts in " in out for name in names)
    assert f"Runtime for predictions: {info['runtime']['name']} (" in out


def test_predict_on_each_runtime_records_it_and_gives_the_same_masks(run_cli, make_crops, cdeep3m, tmp_path):
    images = make_crops(sorted((cdeep3m / "testset").glob("*.png"))[:3], "in", size=(192, 160), offset=(400, 300))
    masks = {}
    for runtime in ("keras", "openvino"):
        out = tmp_path / f"{runtime}.zarr"
        code, _, err = run_cli(
            "predict", images, "-o", out, "--object", "mito", "--model", "mito-mru-5fm", "--runtime", runtime
        )
        assert code == 0, err
        record = json.loads((out / ".zattrs").read_text())["emviewer"]
        (model,) = record["parameters"]["models"]["mito"]
        assert model["runtime"] == runtime and model["precision"] == "float32"  # trained in float32
        assert "openvino" in record["software"]  # its version, beside TensorFlow's
        masks[runtime] = np.asarray(zarr.open_array(str(out / "mito" / "0"), mode="r"))
    assert masks["keras"].any()
    assert np.mean(masks["keras"] != masks["openvino"]) <= 1e-4
    code, _, err = run_cli("predict", images, "-o", tmp_path / "x", "--object", "mito", "--runtime", "tensorrt")
    assert code == 2 and "invalid choice: 'tensorrt'" in err and not (tmp_path / "x").exists()
