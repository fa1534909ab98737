"""Read corpus: every kind of file from issue 17, made by its real writer, through the CLI.

For each kind the script writes a small file with the library labs use (tifffile, mrcfile,
h5py + hdf5plugin, zarr, Pillow; imageio when installed), runs
``python -m emviewer export FILE [OPTIONS] -o out.raw`` in a subprocess and judges it:

``exact``
    exit 0, and ``out.raw`` with its ``out.raw.json`` sidecar hold exactly the expected
    ``(Z, Y, X)`` array (shape, dtype, values; NaN where NaN), and for calibrated files the
    sidecar's ``pixel_size_nm`` ``[z, y, x]`` equals the expected one;
``refused``
    exit 2, one line on stderr naming the file (and the way out, e.g. ``--channel``), no
    file written;
``WRONG``
    anything else, with a short reason (a usage error of argparse is WRONG, not a refusal).

Crafted files (HDF5 external storage, virtual datasets and external links, a Zarr store
with the ``pickle`` codec) must be refused without their secret reaching any output and
without running the pickle. Every run's peak memory (``ru_maxrss``) is shown; above 1 GiB is
WRONG.

    python benchmarks/read_corpus.py [--json rows.json] [--only NAME ...] [--keep DIR]

Prints a table and ``N exact, M refused, K wrong``; exits 1 when any row is WRONG.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdeep3m_mito" / "training" / "images"
SECRET = b"EMVIEWER-SECRET-0f3c9a"  # the content of files a crafted input must not reach
MAX_RSS_MB = 1024


# ---------------------------------------------------------------------------- kinds


@dataclass
class Case:
    """One file a writer made, and what ``emviewer export`` should give back for it."""

    input: Path  # the file or folder itself
    expected: np.ndarray | None  # (Z, Y, X) as read; None: it must be refused
    pixel_size: tuple | None = None  # (z, y, x) nm, z may be None; None: not checked
    options: tuple = ()  # CLI options, e.g. ("--channel", "1")
    dataset: str = ""  # appended as FILE:DATASET
    atol: float = 0
    secret: bytes = b""  # must appear in no output
    marker: Path | None = None  # must not exist after the run (a pickle payload made it)
    stored: np.ndarray | None = field(default=None, repr=False)  # as in the file, for option rows


@dataclass(frozen=True)
class Kind:
    name: str
    writer: str
    make: Callable[[Path], Case]  # writes into an empty folder
    allowed: tuple = ("exact",)
    mention: tuple = ()  # a refusal must contain one of these (the way out)


def em_stack(n: int, size: int) -> np.ndarray:
    """``(n, size, size)`` uint8: crops of real SBEM slices, one image per slice."""
    files = sorted(DATA.glob("images.*.png"))
    if len(files) < n:  # no data beside the repository: random texture keeps slices distinct
        return np.random.default_rng(n * size).integers(0, 256, (n, size, size), dtype=np.uint8)
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.open(f).convert("L"))[100 + 37 * i :][:size, 200 : 200 + size]
            for i, f in enumerate(files[:n])
        ]
    )


def with_options(make: Callable[[Path], Case], *options: str, pick=None, pixel_size=None) -> Callable[[Path], Case]:
    """``make`` run with CLI ``options``; ``pick(stored)`` gives the expected array."""

    def made(folder: Path) -> Case:
        case = make(folder)
        expected = pick(case.stored) if pick else case.expected
        return replace(
            case, options=case.options + options, expected=expected, pixel_size=pixel_size or case.pixel_size
        )

    return made


# ---------------------------------------------------------------------------- MRC (mrcfile)


def make_mrc(folder: Path, dtype: str, voxel_size=None) -> Case:
    """MRC in the mode for ``dtype``; ``uint8``/``int8`` are mode 0 with IMOD's stamp and sign flag."""
    import mrcfile

    em = em_stack(3, 96)
    em[0, 0, 0] = 200  # IMOD's unsigned byte that int8 would read as -56
    data = {
        "uint8": em,
        "int8": em.view(np.int8),
        "int16": em.astype(np.int16) * 100 - 12000,
        "float32": em / np.float32(255) - 0.5,
        "uint16": em.astype(np.uint16) * 250,
        "float16": (em / 255 - 0.5).astype(np.float16),
    }[dtype]
    path = folder / "stack.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data.view(np.int8) if dtype == "uint8" else data)  # mode 0: mrcfile writes int8
        if voxel_size:
            mrc.voxel_size = voxel_size
    if dtype in ("uint8", "int8"):
        stamp_imod(path, signed=dtype == "int8")
    nm = (voxel_size[2] / 10, voxel_size[1] / 10, voxel_size[0] / 10) if voxel_size else None
    return Case(path, data, nm)


def stamp_imod(path: Path, signed: bool) -> None:
    """IMOD's header words: imodStamp 1146047817 at byte 152, imodFlags at 156 (bit 0: bytes signed)."""
    with open(path, "r+b") as f:
        f.seek(152)
        f.write(np.array([1146047817, int(signed)], dtype="<i4").tobytes())


MRC = [
    Kind("mrc mode 0, IMOD unsigned", "mrcfile + IMOD stamp", partial(make_mrc, dtype="uint8")),
    Kind("mrc mode 0, IMOD signed flag", "mrcfile + IMOD stamp", partial(make_mrc, dtype="int8")),
    Kind("mrc mode 1 (int16)", "mrcfile", partial(make_mrc, dtype="int16")),
    Kind("mrc mode 2 (float32)", "mrcfile", partial(make_mrc, dtype="float32")),
    Kind("mrc mode 6 (uint16)", "mrcfile", partial(make_mrc, dtype="uint16")),
    Kind("mrc mode 12 (float16)", "mrcfile", partial(make_mrc, dtype="float16")),
    Kind("mrc voxel 7x7x20 A", "mrcfile", partial(make_mrc, dtype="uint16", voxel_size=(7.0, 7.0, 20.0))),
]


# ---------------------------------------------------------------------------- TIFF (tifffile)


def make_tiff(folder: Path, layout: str) -> Case:
    import tifffile

    path = folder / ("stack.ome.tif" if layout == "ome" else "stack.tif")
    em = em_stack(4, 128)
    expected, pixel_size = em, None
    if layout == "preview":  # an RGB thumbnail first, then the stack: two series
        with tifffile.TiffWriter(path) as tif:
            tif.write(np.zeros((32, 32, 3), np.uint8), photometric="rgb")
            tif.write(em, photometric="minisblack")
    elif layout == "appended":
        for plane in em:
            tifffile.imwrite(path, plane, append=True)
    elif layout == "planar":
        expected = em[:3]
        tifffile.imwrite(path, expected, planarconfig="separate", photometric="minisblack")
    elif layout == "tile-depth":
        tifffile.imwrite(path, em, volumetric=True, tile=(2, 64, 64), photometric="minisblack")
    elif layout == "bigtiff":
        tifffile.imwrite(path, em, bigtiff=True, tile=(64, 64), compression="zlib", photometric="minisblack")
    elif layout in ("lzw", "jpeg", "zstd", "deflate"):
        tifffile.imwrite(path, em, compression=layout, photometric="minisblack")
        expected = tifffile.imread(path)  # JPEG is lossy: what the codec decodes
    elif layout == "big-endian":
        expected = em.astype(np.uint16) * 257
        tifffile.imwrite(path, expected, imagej=True, byteorder=">", metadata={"axes": "ZYX"})
    elif layout == "fiji":
        pixel_size = (50.0, 7.0, 7.0)
        tifffile.imwrite(
            path,
            em,
            imagej=True,
            resolution=(1 / 0.007, 1 / 0.007),
            metadata={"spacing": 0.05, "unit": "um", "axes": "ZYX"},
        )
    elif layout == "ome":
        pixel_size = (30.0, 5.0, 5.0)
        tifffile.imwrite(
            path,
            em,
            photometric="minisblack",
            metadata={
                "axes": "ZYX",
                "PhysicalSizeX": 0.005,
                "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.005,
                "PhysicalSizeYUnit": "µm",
                "PhysicalSizeZ": 0.03,
                "PhysicalSizeZUnit": "µm",
            },
        )
    return Case(path, expected, pixel_size, stored=expected)


def make_hyperstack(folder: Path) -> Case:
    """ImageJ TZCYX, 1 time point, 3 slices, 2 channels: several channels, no choice made."""
    import tifffile

    em = em_stack(6, 96)
    data = em.reshape(1, 3, 2, 96, 96)
    path = folder / "hyperstack.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    return Case(path, None, stored=data)


TIFF = [
    Kind("tiff preview series first", "tifffile", partial(make_tiff, layout="preview")),
    Kind("tiff pages appended", "tifffile append=True", partial(make_tiff, layout="appended")),
    Kind(
        "tiff planar page (3 slices)",
        "tifffile planarconfig=separate",
        partial(make_tiff, layout="planar"),
        allowed=("exact", "refused"),
        mention=("--channel", "--axes"),
    ),
    Kind(
        "tiff planar page --axes ZYX",
        "tifffile planarconfig=separate",
        with_options(partial(make_tiff, layout="planar"), "--axes", "ZYX"),
    ),
    Kind("tiff tile-depth page", "tifffile volumetric=True", partial(make_tiff, layout="tile-depth")),
    Kind(
        "tiff ImageJ TZCYX, 2 channels",
        "tifffile imagej=True",
        make_hyperstack,
        allowed=("refused",),
        mention=("--channel",),
    ),
    Kind(
        "tiff ImageJ TZCYX --channel 1",
        "tifffile imagej=True",
        with_options(make_hyperstack, "--channel", "1", pick=lambda a: a[0, :, 1]),
    ),
    Kind("tiff tiled zlib BigTIFF", "tifffile bigtiff=True", partial(make_tiff, layout="bigtiff")),
    Kind("tiff LZW", "tifffile + imagecodecs", partial(make_tiff, layout="lzw")),
    Kind("tiff JPEG", "tifffile + imagecodecs", partial(make_tiff, layout="jpeg")),
    Kind("tiff ZSTD", "tifffile + imagecodecs", partial(make_tiff, layout="zstd")),
    Kind("tiff Deflate", "tifffile + imagecodecs", partial(make_tiff, layout="deflate")),
    Kind("tiff ImageJ big-endian uint16", "tifffile imagej=True", partial(make_tiff, layout="big-endian")),
    Kind("tiff Fiji calibrated 7x7x50 nm", "tifffile imagej=True", partial(make_tiff, layout="fiji")),
    Kind(
        "tiff Fiji --pixel-size 40,5,5",
        "tifffile imagej=True",
        with_options(partial(make_tiff, layout="fiji"), "--pixel-size", "40,5,5", pixel_size=(40.0, 5.0, 5.0)),
    ),
    Kind("ome-tiff PhysicalSize", "tifffile ome=True", partial(make_tiff, layout="ome")),
]


# ---------------------------------------------------------------------------- HDF5 (h5py)


def axistags(axes: str) -> str:
    """ilastik's (vigra's) ``axistags`` attribute: JSON, channel flag 1, space 2, time 8."""
    flags = {"c": 1, "t": 8}
    return json.dumps(
        {"axes": [{"key": a, "typeFlags": flags.get(a, 2), "resolution": 0, "description": ""} for a in axes]}, indent=2
    )


def make_hdf5(folder: Path, layout: str) -> Case:
    import h5py
    import hdf5plugin

    em = em_stack(4, 128)
    data, expected, tags, pixel_size, filters = em, em, None, None, {}
    if layout == "yxc":  # ilastik's export of one slice
        expected = em_stack(1, 256)
        data, tags = expected[0, :, :, None], "yxc"
    elif layout in ("zyxc", "czyx", "tzyxc"):
        tags = layout
        data = {"zyxc": em[..., None], "czyx": np.stack([em, 255 - em]), "tzyxc": em[None, ..., None]}[layout]
        expected = None if layout == "czyx" else em
    elif layout == "rgb":
        data, expected = np.moveaxis(em[:3], 0, -1), None
    elif layout == "zyxc6":  # six channels, no axistags: only --axes says what they are
        data, expected = np.stack([em // (c + 1) for c in range(6)], axis=-1), None
    elif layout in ("blosc", "lz4", "zstd", "bitshuffle"):
        data = expected = em.astype(np.uint16) * 200
        filters = {
            "blosc": hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE),
            "lz4": hdf5plugin.LZ4(),
            "zstd": hdf5plugin.Zstd(),
            "bitshuffle": hdf5plugin.Bitshuffle(),
        }[layout]
    path = folder / "stack.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("exported_data", data=data, chunks=True if filters else None, **filters)
        if tags:
            ds.attrs["axistags"] = axistags(tags)
        if layout == "element_size_um":
            ds.attrs["element_size_um"] = [0.04, 0.006, 0.006]
            pixel_size = (40.0, 6.0, 6.0)
    return Case(path, expected, pixel_size, stored=data)


def make_crafted_hdf5(folder: Path, trick: str) -> Case:
    """An HDF5 file whose dataset's bytes live in another file: it must be refused."""
    import h5py

    shape = (1, 16, 64)
    secret = (SECRET * 100)[: int(np.prod(shape))]
    (folder / "secret.txt").write_bytes(secret)
    other = folder / "other_user_upload.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.frombuffer(secret, np.uint8).reshape(shape)
    path = folder / "crafted.h5"
    with h5py.File(path, "w") as f:
        if trick == "external storage":
            f.create_dataset(
                "raw", shape=shape, dtype=np.uint8, external=[(str(folder / "secret.txt"), 0, len(secret))]
            )
        elif trick == "virtual dataset":
            layout = h5py.VirtualLayout(shape=shape, dtype=np.uint8)
            layout[:] = h5py.VirtualSource(str(other), "data", shape=shape)
            f.create_virtual_dataset("raw", layout)
        else:
            f["raw"] = h5py.ExternalLink(str(other), "/data")
    return Case(path, None, dataset="/raw", secret=SECRET)


HDF5 = [
    Kind("hdf5 ilastik yxc (256,256,1)", "h5py + axistags", partial(make_hdf5, layout="yxc")),
    Kind("hdf5 ilastik zyxc", "h5py + axistags", partial(make_hdf5, layout="zyxc")),
    Kind(
        "hdf5 ilastik czyx, 2 channels",
        "h5py + axistags",
        partial(make_hdf5, layout="czyx"),
        allowed=("refused",),
        mention=("--channel",),
    ),
    Kind(
        "hdf5 ilastik czyx --channel 1",
        "h5py + axistags",
        with_options(partial(make_hdf5, layout="czyx"), "--channel", "1", pick=lambda a: a[1]),
    ),
    Kind("hdf5 ilastik tzyxc", "h5py + axistags", partial(make_hdf5, layout="tzyxc")),
    Kind("hdf5 RGB (Y,X,3)", "h5py", partial(make_hdf5, layout="rgb"), allowed=("refused",), mention=("--channel",)),
    Kind(
        "hdf5 RGB --channel 2",
        "h5py",
        with_options(partial(make_hdf5, layout="rgb"), "--channel", "2", pick=lambda a: a[None, :, :, 2]),
    ),
    Kind(
        "hdf5 6 channels --axes ZYXC --channel 3",
        "h5py",
        with_options(partial(make_hdf5, layout="zyxc6"), "--axes", "ZYXC", "--channel", "3", pick=lambda a: a[..., 3]),
    ),
    Kind("hdf5 Blosc", "h5py + hdf5plugin", partial(make_hdf5, layout="blosc")),
    Kind("hdf5 LZ4", "h5py + hdf5plugin", partial(make_hdf5, layout="lz4")),
    Kind("hdf5 Zstd", "h5py + hdf5plugin", partial(make_hdf5, layout="zstd")),
    Kind("hdf5 bitshuffle", "h5py + hdf5plugin", partial(make_hdf5, layout="bitshuffle")),
    Kind("hdf5 element_size_um", "h5py", partial(make_hdf5, layout="element_size_um")),
    Kind(
        "hdf5 external storage (crafted)",
        "h5py external=",
        partial(make_crafted_hdf5, trick="external storage"),
        allowed=("refused",),
    ),
    Kind(
        "hdf5 virtual dataset (crafted)",
        "h5py VirtualLayout",
        partial(make_crafted_hdf5, trick="virtual dataset"),
        allowed=("refused",),
    ),
    Kind(
        "hdf5 external link (crafted)",
        "h5py ExternalLink",
        partial(make_crafted_hdf5, trick="external link"),
        allowed=("refused",),
    ),
]


# ---------------------------------------------------------------------------- Zarr, OME-Zarr, N5


def make_zarr_yxc(folder: Path) -> Case:
    import zarr

    em = em_stack(1, 128)
    path = folder / "slice.zarr"
    array = zarr.create_array(store=str(path), shape=(128, 128, 1), chunks=(64, 64, 1), dtype=np.uint8)
    array[:] = em[0, :, :, None]
    return Case(path, em)


def make_ome_zarr(folder: Path) -> Case:
    """OME-Zarr 0.4 as its spec (and ome-zarr-py) lays it out: zarr v2, scale in micrometre."""
    import zarr

    em = em_stack(4, 128)
    path = folder / "stack.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    scale = {"type": "scale", "scale": [0.05, 0.008, 0.008]}
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": "stack",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [scale]}],
        }
    ]
    group.create_array("0", shape=em.shape, chunks=(1, 64, 64), dtype=em.dtype)[:] = em
    return Case(path, em, (50.0, 8.0, 8.0))


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle codec ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def make_pickle_zarr(folder: Path) -> Case:
    """A zarr v2 array whose compressor is ``pickle``, its chunk a payload: must be refused unread."""
    path = folder / "evil.zarr"
    path.mkdir()
    marker = folder / "pickle_ran"
    zarray = {
        "zarr_format": 2,
        "shape": [1, 8, 8],
        "chunks": [1, 8, 8],
        "dtype": "|u1",
        "compressor": {"id": "pickle"},
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }
    (path / ".zarray").write_text(json.dumps(zarray))
    (path / "0.0.0").write_bytes(pickle.dumps(_Payload(marker)))
    return Case(path, None, marker=marker)


def make_n5(folder: Path) -> Case:
    """An N5 container by the spec: big-endian blocks, dimensions listed x first, uint16."""
    data = em_stack(3, 100)[:, :90].astype(np.uint16) * 250 + 3  # (Z, Y, X) = (3, 90, 100)
    root = folder / "stack.n5"
    dataset = root / "raw"
    dataset.mkdir(parents=True)
    (root / "attributes.json").write_text(json.dumps({"n5": "2.5.0"}))
    block = (64, 64, 2)  # x, y, z
    (dataset / "attributes.json").write_text(
        json.dumps(
            {"dimensions": [100, 90, 3], "blockSize": list(block), "dataType": "uint16", "compression": {"type": "raw"}}
        )
    )
    for iz in range(0, 3, block[2]):
        for iy in range(0, 90, block[1]):
            for ix in range(0, 100, block[0]):
                piece = data[iz : iz + block[2], iy : iy + block[1], ix : ix + block[0]]
                header = np.array([0, 3], ">u2").tobytes() + np.array(piece.shape[::-1], ">u4").tobytes()
                out = dataset / str(ix // block[0]) / str(iy // block[1]) / str(iz // block[2])
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(header + piece.astype(">u2").tobytes())
    return Case(root, data)


ZARR = [
    Kind("zarr (Y,X,1)", "zarr", make_zarr_yxc),
    Kind("ome-zarr scale in micrometer", "zarr (OME-Zarr 0.4 layout)", make_ome_zarr),
    Kind("zarr v2 pickle codec (crafted)", "hand-written .zarray", make_pickle_zarr, allowed=("refused",)),
    Kind("n5 container", "hand-written N5 2.5", make_n5, allowed=("exact", "refused"), mention=("N5",)),
]


# ---------------------------------------------------------------------------- values and PNG


def make_values(folder: Path, kind: str) -> Case:
    import tifffile
    from PIL import Image

    if kind == "nan":
        data = em_stack(3, 128) / np.float32(255)
        data[np.random.default_rng(16).random(data.shape) < 0.016] = np.nan
        path = folder / "float_nan.tif"
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})  # as Fiji saves float stacks
    elif kind == "sem-border":
        data = 30000 + em_stack(1, 256).astype(np.uint16) * 16  # 30000..34080
        border = np.ones(data.shape, bool)
        border[:, 55:202, 55:202] = False  # 67 % of the slice is alignment border
        data[border] = 0
        path = folder / "sem16.tif"
        tifffile.imwrite(path, data[0])
    elif kind == "low-contrast":
        data = (100 + (em_stack(1, 256).astype(np.uint16) * 50 + 127) // 255).astype(np.uint8)
        path = folder / "grey100_150.png"
        Image.fromarray(data[0]).save(path)
    else:  # 16-bit PNG
        data = em_stack(1, 128).astype(np.uint16) * 250 + 7
        path = folder / "slice16.png"
        try:
            import imageio.v3 as iio

            iio.imwrite(path, data[0])
        except ImportError:
            Image.fromarray(data[0]).save(path)
    return Case(path, data)


def make_png_bomb(folder: Path) -> Case:
    """8192 x 8192 RGB grey, ~200 KB on disk, 192 MiB decoded: read as grey in bounded memory, or refused."""
    from PIL import Image

    path = folder / "bomb.png"
    Image.new("RGB", (8192, 8192), (90, 90, 90)).save(path)
    return Case(path, np.full((1, 8192, 8192), 90, np.uint8), atol=1)


VALUES = [
    Kind("float32 with 1.6 % NaN", "tifffile", partial(make_values, kind="nan")),
    Kind("uint16 SEM 30000-34080, 67 % border", "tifffile", partial(make_values, kind="sem-border")),
    Kind("uint8 grey 100-150", "Pillow", partial(make_values, kind="low-contrast")),
    Kind("png 16-bit", "Pillow (imageio if installed)", partial(make_values, kind="png16")),
    Kind("png RGB bomb 8192x8192", "Pillow", make_png_bomb, allowed=("exact", "refused")),
]

KINDS = MRC + TIFF + HDF5 + ZARR + VALUES


# ---------------------------------------------------------------------------- running and judging


@dataclass
class Run:
    code: int | None  # None: killed after the time limit
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float


@dataclass
class Row:
    kind: str
    writer: str
    expected: str
    outcome: str  # exact, refused or WRONG
    pixel_size: str
    peak_mb: float
    seconds: float
    reason: str = ""


# A child's ru_maxrss includes the high-water mark of the process that spawned it (the kernel
# keeps it across exec), so a small launcher starts the CLI and reports the CLI's own peak.
_LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"code": os.waitstatus_to_exitcode(status), "peak_kb": usage.ru_maxrss}, f)
"""


def run_cli(args: list, cwd: Path, timeout: float) -> Run:
    """``python -m emviewer ARGS`` in ``cwd`` with its peak memory, killed after ``timeout`` s."""
    start = time.perf_counter()
    report = cwd / "launcher.json"
    command = [sys.executable, "-c", _LAUNCHER, str(report), sys.executable, "-m", "emviewer", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            command, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            proc.wait(timeout)
            result = json.loads(report.read_text())
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the CLI under it
            proc.wait()
            result = {"code": None, "peak_kb": 0}
        out.seek(0)
        err.seek(0)
        text = [f.read().decode(errors="replace") for f in (out, err)]
    return Run(result["code"], text[0], text[1], result["peak_kb"] / 1024, time.perf_counter() - start)


def load_raw(out: Path) -> tuple[np.ndarray, dict]:
    """The exported array, read by what its sidecar says."""
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    dtype = np.dtype(meta["dtype"]).newbyteorder("<" if meta.get("byte_order", "little") == "little" else ">")
    return np.fromfile(out, dtype=dtype).reshape(meta["shape"]), meta


def value_difference(got: np.ndarray, want: np.ndarray, atol: float) -> str:
    """Empty when equal (NaN where NaN, within ``atol``), else what differs first."""
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if got.dtype.name != want.dtype.name:
        return f"dtype {got.dtype.name} != expected {want.dtype.name}"
    flat_got, flat_want, step = got.reshape(-1), want.reshape(-1), 1 << 22
    for start in range(0, flat_got.size, step):  # in pieces: the 8192^2 bomb stays small
        g = flat_got[start : start + step].astype(np.float64)
        w = flat_want[start : start + step].astype(np.float64)
        bad = ~((np.abs(g - w) <= atol) | (np.isnan(g) & np.isnan(w)))
        if bad.any():
            first = start + int(np.argmax(bad))
            where = np.unravel_index(first, got.shape)
            count = int(bad.sum())
            at = tuple(int(i) for i in where)
            return f"{count}+ values differ, first at {at}: {flat_got[first]} != {flat_want[first]}"
    return ""


def pixel_text(size) -> str:
    return "-" if size is None else ",".join("?" if v is None else f"{float(v):g}" for v in size)


def pixel_difference(got, want) -> str:
    """Empty when the sidecar's ``pixel_size_nm`` matches ``want`` (z may be None in both)."""
    if want is None:
        return ""
    same = (
        got is not None
        and len(got) == 3
        and all(
            (g is None and w is None) or (g is not None and w is not None and abs(float(g) - w) <= 1e-4 * abs(w))
            for g, w in zip(got, want, strict=True)
        )
    )
    return "" if same else f"pixel_size_nm {pixel_text(got)} != expected {pixel_text(want)}"


def judge_exact(case: Case, out: Path) -> tuple[str, str]:
    if case.expected is None:
        return "WRONG", "read (exit 0) but must be refused"
    try:
        got, meta = load_raw(out)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return "WRONG", f"exit 0 but no readable out.raw + sidecar ({type(exc).__name__}: {exc})"
    stray = sorted(p.name for p in out.parent.iterdir() if p.name not in (out.name, out.name + ".json"))
    problem = value_difference(got, case.expected, case.atol) or pixel_difference(
        meta.get("pixel_size_nm"), case.pixel_size
    )
    if stray and not problem:
        problem = f"left stray files {', '.join(stray)}"
    return ("WRONG", problem) if problem else ("exact", "")


def judge_refusal(kind: Kind, case: Case, run: Run, out_dir: Path) -> tuple[str, str]:
    lines = run.stderr.strip().splitlines()
    if "usage:" in run.stderr:
        return "WRONG", "usage error: " + (lines[-1] if lines else "")
    if len(lines) != 1:
        return "WRONG", f"exit 2 with {len(lines)} lines on stderr: {' | '.join(lines[-2:])}"
    if case.input.name not in lines[0]:
        return "WRONG", f"message does not name {case.input.name}: {lines[0]}"
    if kind.mention and not any(word in lines[0] for word in kind.mention):
        return "WRONG", f"message does not mention {' or '.join(kind.mention)}: {lines[0]}"
    written = sorted(p.name for p in out_dir.rglob("*"))
    if written:
        return "WRONG", f"refused but wrote {', '.join(written)}"
    return "refused", lines[0]


def leak(case: Case, run: Run, out_dir: Path) -> str:
    """What a crafted file reached outside itself: the secret in any output, or the pickle ran."""
    if case.marker is not None and case.marker.exists():
        return "the pickle payload ran (marker file created)"
    if case.secret:
        outputs = [run.stdout.encode(), run.stderr.encode()] + [
            p.read_bytes() for p in out_dir.rglob("*") if p.is_file()
        ]
        if any(case.secret in text for text in outputs):
            return "the secret file's bytes reached the output"
    return ""


def judge(kind: Kind, case: Case, run: Run, out_dir: Path) -> tuple[str, str]:
    """``(outcome, reason)`` for one CLI run on one kind."""
    problem = leak(case, run, out_dir)
    if problem:
        return "WRONG", problem
    if run.code is None:
        return "WRONG", "timed out"
    if run.peak_mb > MAX_RSS_MB:
        return "WRONG", f"peak memory {run.peak_mb:.0f} MB > {MAX_RSS_MB} MB"
    if run.code == 0:
        outcome, reason = judge_exact(case, out_dir / "out.raw")
    elif run.code == 2:
        outcome, reason = judge_refusal(kind, case, run, out_dir)
    else:
        last = run.stderr.strip().splitlines()[-1:] or ["(no message)"]
        return "WRONG", f"exit {run.code}: {last[0]}"
    if outcome != "WRONG" and outcome not in kind.allowed:
        return "WRONG", f"{outcome}, but only {' or '.join(kind.allowed)} is right" + (f": {reason}" if reason else "")
    return outcome, reason


def expected_text(kind: Kind, case: Case) -> str:
    parts = []
    if case.expected is not None and "exact" in kind.allowed:
        parts.append(f"{case.expected.dtype.name} {'x'.join(map(str, case.expected.shape))}")
    if "refused" in kind.allowed:
        parts.append("refused" + (f" ({'/'.join(kind.mention)})" if kind.mention else ""))
    return " or ".join(parts)


def run_kind(kind: Kind, folder: Path, timeout: float) -> Row:
    """Make one kind in ``folder``, export it to ``folder/out/out.raw`` and judge the result."""
    folder.mkdir(parents=True)
    case = kind.make(folder)
    out_dir = folder / "out"
    out_dir.mkdir()
    spec = f"{case.input}:{case.dataset}" if case.dataset else str(case.input)
    run = run_cli(["export", spec, *case.options, "-o", str(out_dir / "out.raw")], folder, timeout)
    outcome, reason = judge(kind, case, run, out_dir)
    reason = reason.replace("emviewer: error: ", "").replace(f"{folder}{os.sep}", "")
    got = None
    if run.code == 0 and (out_dir / "out.raw.json").exists():
        got = json.loads((out_dir / "out.raw.json").read_text()).get("pixel_size_nm")
    pixel = pixel_text(got) + ("" if case.pixel_size is None else f" (want {pixel_text(case.pixel_size)})")
    return Row(
        kind.name,
        kind.writer,
        expected_text(kind, case),
        outcome,
        pixel,
        round(run.peak_mb),
        round(run.seconds, 1),
        reason,
    )


def run_corpus(
    workdir: Path, kinds=KINDS, timeout: float = 300, progress: Callable[[Row], None] = lambda row: None
) -> list[Row]:
    """Run every kind in its own sub-folder of ``workdir``; one :class:`Row` per kind."""
    rows = []
    for number, kind in enumerate(kinds):
        row = run_kind(kind, Path(workdir) / f"{number:02d}", timeout)
        progress(row)
        rows.append(row)
    return rows


def format_table(rows: list[Row], width: int = 90) -> str:
    header = ("kind", "writer", "expected", "outcome", "pixel nm", "MB", "s", "reason")
    cells = [header] + [
        (r.kind, r.writer, r.expected, r.outcome, r.pixel_size, str(r.peak_mb), f"{r.seconds:g}", r.reason[:width])
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    # widths cover all columns but the last, which is not padded: zip stops before it
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=False)) + "  " + cell[-1] for cell in cells
    )


def summary(rows: list[Row]) -> str:
    count = {o: sum(r.outcome == o for r in rows) for o in ("exact", "refused", "WRONG")}
    return f"{count['exact']} exact, {count['refused']} refused, {count['WRONG']} wrong"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="save the rows to this JSON file")
    parser.add_argument("--only", action="append", help="run only kinds whose name contains this text (repeatable)")
    parser.add_argument("--keep", type=Path, help="make the files in this (new) folder and keep them")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per CLI run (default 300)")
    args = parser.parse_args(argv)
    kinds = [k for k in KINDS if not args.only or any(text in k.name for text in args.only)]
    print(f"{len(kinds)} kinds; slices from {DATA if DATA.is_dir() else 'random texture (no data found)'}", flush=True)
    show = lambda row: print(f"  {row.outcome:<7} {row.kind}", file=sys.stderr, flush=True)  # noqa: E731
    if args.keep:
        rows = run_corpus(args.keep, kinds, args.timeout, show)
    else:
        with tempfile.TemporaryDirectory(prefix="read_corpus_") as tmp:
            rows = run_corpus(Path(tmp), kinds, args.timeout, show)
    print(format_table(rows))
    print(summary(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 1 if any(r.outcome == "WRONG" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
