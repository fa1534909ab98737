"""Single 2D images and folders of slices (PNG, JPEG, TIFF), read lazily one file at a time.

Each file is checked from its header before any pixel is decoded: size in pixels, decoded
bytes (pixels x samples x bytes per sample, see :func:`.common.check_decoded_size`), colour
layout. Values are kept exactly: 16-bit PNGs stay ``uint16`` (grey, grey + alpha and RGB(A),
which Pillow would cut to 8 bits, are decoded with imagecodecs' libpng), big-endian TIFFs come
back in native byte order, palette images keep their indices (label maps are saved so).
Colour images become grey (ITU-R 601 luma) unless a channel is chosen.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageMode

from ..errors import ImageContentError, InputError, ShapeMismatchError, UnreadableFileError
from ..volume import LazySlices, Volume
from .atomic import atomic_paths
from .axes import ReadOptions, as_zyx
from .common import MAX_SLICE_PIXELS, check_decoded_size, check_slice_size, image_files, to_grey
from .tiff_metadata import tiff_pixel_size
from .units import dpi_to_nm

# Let PIL open anything up to our own limit; we refuse larger slices ourselves with a clear message.
Image.MAX_IMAGE_PIXELS = MAX_SLICE_PIXELS

#: Pixels per strip when Pillow's RGB(A) is converted to grey, so no full float copy is made.
_STRIP_PIXELS = 2**22
#: PNG colour types (IHDR) -> samples per pixel.
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PIL_COLOUR = ("RGB", "RGBA", "RGBX")


@dataclass(frozen=True)
class SliceHeader:
    """What a 2D image file's header says, read without decoding pixels.

    ``shape`` is ``(Y, X)``; ``axes`` the decoded array's axes (``YX``, ``YXS``, ``SYX``...);
    ``kind`` what must match across a folder (PIL mode, or TIFF dtype); ``samples`` the values
    per pixel (colour samples and channels); ``dtype`` the decoded sample type in native byte
    order; ``colour`` true for RGB(A) samples; ``alpha`` the number of trailing alpha samples;
    ``png16`` a 16-bit PNG; ``pixel_size`` ``(y, x)`` in nm or ``None``, read as ``pixel_size_from``.
    """

    shape: tuple[int, int]
    kind: str
    axes: str
    samples: int
    dtype: np.dtype
    colour: bool = False
    alpha: int = 0
    fmt: str = ""
    png16: bool = False
    pixel_size: tuple[float, float] | None = None
    pixel_size_from: str | None = None


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


def _native(dtype) -> np.dtype:
    return np.dtype(dtype).newbyteorder("=")


def _check(header: SliceHeader, path: Path) -> SliceHeader:
    check_slice_size(header.shape, path)
    check_decoded_size(header.shape, header.samples, header.dtype.itemsize, path)
    return header


# ---------------------------------------------------------------- pixel size


def _pil_pixel_size(img: Image.Image) -> tuple[tuple[float, float] | None, str | None]:
    """``(y, x)`` nm from a PNG pHYs chunk (pixels per metre) or JPEG JFIF/EXIF density.

    Pillow gives both as ``info["dpi"]`` ``(x, y)``; a pHYs without the metre unit gives none.
    """
    dpi = img.info.get("dpi")
    if not isinstance(dpi, tuple) or len(dpi) != 2:
        return None, None
    x, y = dpi_to_nm(dpi[0]), dpi_to_nm(dpi[1])
    if x is None or y is None:
        return None, None
    source = "PNG pHYs (pixels per metre)" if img.format == "PNG" else f"{img.format} resolution (dpi)"
    return (y, x), source


# ---------------------------------------------------------------- headers


def _png_ihdr(path: Path) -> tuple[int, int]:
    """``(bit depth, colour type)`` from a PNG's IHDR chunk (Pillow hides a 16-bit colour depth)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise UnreadableFileError(path, "not a readable PNG (no IHDR chunk)")
    return head[24], head[25]


def _pil_header(img: Image.Image, path: Path) -> SliceHeader:
    bands = img.getbands()
    samples, png16 = len(bands), False
    dtype: np.dtype = np.dtype(np.uint8)
    kind = img.mode
    if img.format == "PNG":
        depth, colour_type = _png_ihdr(path)
        if depth == 16:
            samples, dtype, png16 = _PNG_SAMPLES.get(colour_type, samples), np.dtype(np.uint16), True
            kind = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[samples]
    if not png16 and img.mode not in ("1", "P"):
        dtype = _native(ImageMode.getmode(img.mode).typestr)
    alpha = int(bands[-1] in ("A", "a") and samples in (2, 4))
    colour = img.mode in _PIL_COLOUR or kind in ("RGB;16", "RGBA;16")
    size_nm, size_from = _pil_pixel_size(img)
    axes = "YX" if samples == 1 else "YXS"
    return SliceHeader(
        (img.height, img.width),
        kind,
        axes,
        samples,
        dtype,
        colour,
        alpha,
        img.format or "",
        png16,
        pixel_size=size_nm,
        pixel_size_from=size_from,
    )


def _tiff_series(tif: tifffile.TiffFile, path: Path):
    """The file's largest 2D image; a file holding a stack is refused (one slice per file)."""
    if not tif.series:
        raise UnreadableFileError(path, "not a readable TIFF file (no image in it)")
    for series in tif.series:
        extra = [f"{a}={n}" for a, n in zip(series.axes, series.shape, strict=True) if a not in "YXSC" and n > 1]
        if extra:
            stack = f"{', '.join(extra)}, axes {series.axes}"
            raise ImageContentError(
                path,
                f"holds a stack ({stack}), but each file in a folder must be one 2D slice; open the file on its own",
            )
    return max(tif.series, key=lambda s: s.shape[s.axes.index("Y")] * s.shape[s.axes.index("X")])


def _tiff_header(tif: tifffile.TiffFile, path: Path):
    series = _tiff_series(tif, path)
    page = series.keyframe
    axes, shape = series.axes, series.shape
    yx = (int(shape[axes.index("Y")]), int(shape[axes.index("X")]))
    samples = math.prod(shape) // max(1, yx[0] * yx[1])  # channels and colour samples alike
    extras = len(getattr(page, "extrasamples", ()) or ())
    colour = page.photometric in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)  # tifffile decodes YCbCr to RGB
    size_zyx, size_from = tiff_pixel_size(tif, tif.series.index(series), page)
    header = SliceHeader(
        yx,
        str(series.dtype),
        axes,
        samples,
        _native(series.dtype),
        colour,
        extras,
        "TIFF",
        False,
        pixel_size=size_zyx[1:] if size_zyx else None,
        pixel_size_from=size_from,
    )
    return header, series


def probe_2d(path: Path) -> SliceHeader:
    """Read a 2D image file's header (size, layout, sample type, pixel size) without decoding pixels.

    Raises
    ------
    ImageContentError
        More pixels than :data:`.common.MAX_SLICE_PIXELS` or more decoded bytes than
        :data:`.common.MAX_DECODED_SLICE_BYTES`, or a TIFF holding a stack.
    UnreadableFileError
        Not an image, or a damaged header.
    """
    return _open_2d(path, decode=False, channel=None)[0]


# ---------------------------------------------------------------- decoding


@overload
def _open_2d(path: Path, decode: Literal[True], channel: int | None) -> tuple[SliceHeader, np.ndarray]: ...


@overload
def _open_2d(path: Path, decode: Literal[False], channel: int | None) -> tuple[SliceHeader, None]: ...


def _open_2d(path: Path, decode: bool, channel: int | None) -> tuple[SliceHeader, np.ndarray | None]:
    try:
        if _is_tiff(path):
            with tifffile.TiffFile(path) as tif:
                header, series = _tiff_header(tif, path)
                _check(header, path)
                return header, (_decode_tiff(series, header, path, channel) if decode else None)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                header = _check(_pil_header(img, path), path)
                return header, (_decode_pil(img, header, path, channel) if decode else None)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageContentError(
            path, f"header claims more than {MAX_SLICE_PIXELS:,} pixels; refusing to read it"
        ) from None
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, tifffile.TiffFileError) as exc:
        raise UnreadableFileError(path, f"not a readable image ({exc})") from None


def _plane(array: np.ndarray, header: SliceHeader, path: Path, channel: int | None) -> np.ndarray:
    """The ``(Y, X)`` plane of a decoded slice: one channel, the grey of RGB(A), or grey without alpha."""
    axes = header.axes
    if channel is None and "S" in axes and array.shape[axes.index("S")] - header.alpha == 1:
        array, axes = np.take(array, 0, axis=axes.index("S")), axes.replace("S", "")
    plane = np.asarray(as_zyx(array, axes, path, channel, colour_to_grey=header.colour)[0])
    if plane.dtype == bool:
        plane = plane.astype(np.uint8)
    return plane.astype(_native(plane.dtype), copy=False)


def _decode_tiff(series, header: SliceHeader, path: Path, channel: int | None) -> np.ndarray:
    try:
        array = series.asarray()
    except Exception as exc:  # codecs raise their own kinds (zlib.error, ...) on damaged data
        raise UnreadableFileError(path, f"cannot decode the image ({exc})") from None
    return _plane(array, header, path, channel)


def _decode_pil(img: Image.Image, header: SliceHeader, path: Path, channel: int | None) -> np.ndarray:
    if header.png16:  # Pillow reads 16-bit grey + alpha and RGB(A) PNGs as 8-bit: use libpng
        try:
            array = imagecodecs.png_decode(path.read_bytes())
        except Exception as exc:
            raise UnreadableFileError(path, f"cannot decode the 16-bit PNG ({exc})") from None
        return _plane(array, header, path, channel)
    bands = img.getbands()
    if len(bands) == 1:
        return _plane(np.asarray(img), header, path, None)
    if channel is not None:
        if not 0 <= channel < len(bands):
            raise InputError(
                path, f"--channel {channel} is out of range: the image has channels 0-{len(bands) - 1} ({img.mode})"
            )
        return np.asarray(img.getchannel(channel))
    if header.samples - header.alpha == 1:  # grey or palette + alpha: keep the grey values or indices
        return np.asarray(img.getchannel(0))
    if img.mode in _PIL_COLOUR:
        return _grey_strips(img)
    raise ImageContentError(
        path,
        f"colour mode {img.mode} cannot be read as grey; save the image as grey or RGB, "
        "or choose a band with --channel N",
    )


def _grey_strips(img: Image.Image) -> np.ndarray:
    """Grey ``(Y, X)`` uint8 of an 8-bit RGB(A) image, converted a strip of rows at a time."""
    width, height = img.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    grey = np.empty((height, width), dtype=np.uint8)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        grey[top:bottom] = to_grey(np.asarray(img.crop((0, top, width, bottom))))
    return grey


def read_2d(path: Path, channel: int | None = None) -> np.ndarray:
    """Decode one image file to a ``(Y, X)`` array of its own dtype (native byte order).

    Colour (RGB, RGBA) becomes grey unless ``channel`` picks one sample; an alpha sample is
    dropped; palette images keep their indices; 1-bit images become uint8 0/1.

    Raises
    ------
    InputError
        Naming ``path``: unreadable, too large (checked before decoding), a stack, several
        channels without ``channel``, or ``channel`` out of range.
    """
    return _open_2d(path, decode=True, channel=channel)[1]


class SliceFiles(LazySlices):
    """Lazy ``(Z, Y, X)`` array over a list of same-sized 2D image files."""

    def __init__(
        self, paths: list[Path], shape_yx: tuple[int, int], dtype: np.dtype, channel: int | None = None
    ) -> None:
        self.paths = paths
        self.shape = (len(paths),) + tuple(shape_yx)
        self.dtype = np.dtype(dtype)
        self.channel = channel

    def _read(self, z: int) -> np.ndarray:
        path = self.paths[z]
        array = read_2d(path, self.channel)
        if array.shape != self.shape[1:]:
            raise ShapeMismatchError(
                path, f"slice is {array.shape[1]} x {array.shape[0]}, the others are {self.shape[2]} x {self.shape[1]}"
            )
        if array.dtype != self.dtype:
            raise ImageContentError(path, f"pixel type {array.dtype} differs from the other slices ({self.dtype})")
        return array


def _metadata(header: SliceHeader, path: Path, folder: bool) -> dict:
    meta: dict[str, str | None] = {
        "format": f"folder of {header.fmt.lower()}" if folder else header.fmt.lower(),
        "axes": ("Z" if folder else "") + header.axes,
    }
    if header.pixel_size is not None:
        meta["pixel_size_from"] = f"{header.pixel_size_from} of {path.name}" if folder else header.pixel_size_from
    return meta


def _pixel_size(header: SliceHeader) -> tuple | None:
    return None if header.pixel_size is None else (None,) + tuple(header.pixel_size)


def read_image(path: Path, options: ReadOptions | None = None) -> Volume:
    """A single 2D image file as a one-slice ``(1, Y, X)`` Volume, decoded now so damage shows at once.

    ``options.channel`` picks one sample of a colour image instead of its grey. The file's
    layout is stated by the file itself (PNG, JPEG, TIFF tags), so ``options.axes`` is not used.
    Pixel size ``(None, y, x)`` nm comes from PNG pHYs, JPEG density or TIFF resolution
    (72 and 96 dpi count as unknown, see :func:`dpi_to_nm`).
    """
    options = options or ReadOptions()
    header, array = _open_2d(path, decode=True, channel=options.channel)
    return Volume(
        array[np.newaxis],
        str(path),
        slice_names=[path.stem],
        pixel_size=_pixel_size(header),
        metadata=_metadata(header, path, False),
    )


def read_folder(folder: Path, options: ReadOptions | None = None) -> Volume:
    """A folder of 2D slices as a lazy ``(Z, Y, X)`` Volume, ordered by the number in their names.

    All files must share size and pixel format (``img2`` comes before ``img10``). The pixel
    size ``(None, y, x)`` nm is the first file's; z is unknown. See :func:`read_image` for options.
    """
    options = options or ReadOptions()
    if not any(folder.iterdir()):
        raise InputError(folder, "the folder is empty")
    paths = image_files(folder)
    if not paths:
        raise InputError(folder, "the folder holds no PNG, TIFF or JPEG images")
    first = probe_2d(paths[0])
    for path in paths[1:]:
        header = probe_2d(path)
        if header.shape != first.shape:
            raise ShapeMismatchError(
                path,
                f"slice is {header.shape[1]} x {header.shape[0]} pixels but {paths[0].name} is "
                f"{first.shape[1]} x {first.shape[0]}; all slices must have one size",
            )
        if header.kind != first.kind:
            raise ImageContentError(path, f"pixel format {header.kind} differs from {paths[0].name} ({first.kind})")
    dtype = read_2d(paths[0], options.channel).dtype
    data = SliceFiles(paths, first.shape, dtype, options.channel)
    return Volume(
        data,
        str(folder),
        slice_names=[p.stem for p in paths],
        pixel_size=_pixel_size(first),
        metadata=_metadata(first, paths[0], True),
    )


def write_slices(paths: list[Path], images, quality: int = 95) -> None:
    """Write one PNG or JPEG per ``(Y, X)`` grey or ``(Y, X, 3)`` RGB image, all or nothing.

    PNG keeps 8- and 16-bit grey values exactly (big-endian input included); JPEG needs 8-bit data.
    """
    with atomic_paths(paths) as temps:
        # images first: its generator runs to the end; a count that differs from paths raises (nothing written)
        for image, tmp, path in zip(images, temps, paths, strict=True):
            fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
            options = {"quality": quality} if fmt == "JPEG" else {"compress_level": 6}
            image = np.asarray(image)
            image = np.ascontiguousarray(image, dtype=_native(image.dtype))
            Image.fromarray(image).save(tmp, format=fmt, **options)
