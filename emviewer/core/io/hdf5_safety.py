"""HDF5 files read as untrusted input: nothing in a file may make us read outside it.

HDF5 can point outside the file in three ways: external links (a link naming another file),
virtual datasets (a mapping over datasets of other files) and external storage (raw bytes
kept in other files). The CLI, the app and the server read uploads with the same reader, so
each of these is refused before a byte of data is read. As a second line of defence the
reader opens the file through a Python file object (h5py's ``fileobj`` driver): HDF5 then
opens every linked or virtual "other file" through that same object, i.e. our own file.

Link walking uses link-level inspection only (``get(name, getlink=True)`` one name at a
time, ``links.visit`` with link info); h5py's ``visititems`` (``H5Ovisit``) recurses through
hard links only, so it never opens the target of an external (or soft) link.
"""

from __future__ import annotations

import atexit
import contextlib
import posixpath
import re
import weakref
from pathlib import Path
from typing import BinaryIO

import h5py
import numpy as np

from ..errors import ImageContentError, InputError, UnreadableFileError

_OUTSIDE = "EMViewer reads only data stored inside the file"
_MAX_SOFT_HOPS = 32  # soft links pointing at soft links; a loop ends here
#: Largest chunk we decode: a tiny compressed chunk can expand to HDF5's 4 GiB chunk limit.
MAX_CHUNK_BYTES = 2**30
_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def _link(group: h5py.Group, name: str):
    """The link ``name`` (one path component) of ``group``, not followed; ``False`` for a
    user-defined link, which h5py cannot describe."""
    try:
        return group.get(name, getlink=True)
    except TypeError:
        return False


def _refuse_link(path: Path, name: str, link) -> None:
    if isinstance(link, h5py.ExternalLink):
        raise UnreadableFileError(path, f"{name} is an external link to {link.filename}:{link.path}; {_OUTSIDE}")
    raise UnreadableFileError(path, f"{name} is a link of a kind HDF5 cannot check (user-defined); {_OUTSIDE}")


class _Missing(LookupError):
    """A name on the way to the dataset does not exist (or is not a group)."""


def _find(h5: h5py.File, path: Path, target: str, hops: int) -> tuple[object, str]:
    """The object at ``target`` and its resolved path, walking one link at a time."""
    node, where = h5, "/"
    for part in (p for p in target.split("/") if p not in ("", ".")):
        if not isinstance(node, h5py.Group):
            raise _Missing(where)
        name = posixpath.join(where, part)
        link = _link(node, part)
        if link is None:
            raise _Missing(name)
        if isinstance(link, h5py.SoftLink):
            if hops >= _MAX_SOFT_HOPS:
                raise UnreadableFileError(path, f"{name} starts a chain of more than {_MAX_SOFT_HOPS} soft links")
            node, where = _find(h5, path, posixpath.join(where, link.path), hops + 1)
        elif isinstance(link, h5py.HardLink):
            node, where = node[part], name
        else:
            _refuse_link(path, name, link)
    return node, where


def resolve_dataset(h5: h5py.File, path: Path, dataset: str) -> tuple[h5py.Dataset, str]:
    """The dataset named ``dataset`` (``/group/ds``) and its path through hard links only.

    Soft links are followed (inside the file); an external link or a user-defined link on
    the way raises :class:`UnreadableFileError`, a missing name :class:`InputError` that
    lists the file's image datasets.
    """
    try:
        node, where = _find(h5, path, dataset, 0)
    except _Missing:
        raise InputError(
            path, f"no dataset {dataset!r} in the file (it has: {', '.join(image_datasets(h5)) or 'none'})"
        ) from None
    if not isinstance(node, h5py.Dataset):
        raise ImageContentError(path, f"{dataset!r} is not a dataset")
    return node, where


def refuse_outside_links(h5: h5py.File, path: Path) -> None:
    """Raise when any link in the file is an external or user-defined link (none followed)."""
    found: list[str] = []

    def visit(name: bytes, info) -> None:
        if info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            found.append(name.decode("utf-8", "replace"))

    h5.id.links.visit(visit, info=True)
    if found:
        name = "/" + found[0]
        parent, _, leaf = name.rpartition("/")
        _refuse_link(path, name, _link(h5[parent or "/"], leaf))


def _filter_name(code: int, stored: bytes) -> str:
    text = stored.decode("utf-8", "replace").strip() if stored else ""
    return f"{text or 'unnamed'} (id {code})"


def check_dataset(ds: h5py.Dataset, path: Path, name: str) -> None:
    """Refuse a dataset whose bytes live outside the file, cannot be decoded here, or
    decode to chunks over :data:`MAX_CHUNK_BYTES`.

    Looks only at the dataset's creation properties, so no data is read. ``name`` is the
    dataset's path, used in messages.
    """
    where = f"dataset {name}"
    if ds.is_virtual:
        raise UnreadableFileError(
            path, f"{where} is a virtual dataset (its data are mapped from other files); {_OUTSIDE}"
        )
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        raise UnreadableFileError(path, f"{where} keeps its data in external files (HDF5 external storage); {_OUTSIDE}")
    for i in range(dcpl.get_nfilters()):
        code, _, _, stored_name = dcpl.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            raise UnreadableFileError(
                path,
                f"{where} is compressed with HDF5 filter {_filter_name(code, stored_name)}, "
                "for which no decoder is installed",
            )
    chunk_bytes = int(np.prod(ds.chunks, dtype=np.int64)) * ds.dtype.itemsize if ds.chunks else 0
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise UnreadableFileError(
            path,
            f"{where} is stored in chunks of {ds.chunks} that decode to {chunk_bytes / 2**30:.1f} GiB each, "
            f"more than the limit of {MAX_CHUNK_BYTES / 2**30:g} GiB",
        )


class CheckedDataset:
    """Lazy view of an h5py dataset whose read errors name the file and the dataset.

    h5py reports a failed read (a damaged chunk, a codec failure) as an ``OSError`` with no
    file name; here it becomes :class:`UnreadableFileError`. Data come back in native byte
    order, with the dataset's dtype otherwise.
    """

    def __init__(self, ds: h5py.Dataset, source: str) -> None:
        self._ds, self._source = ds, source
        self.shape = tuple(int(n) for n in ds.shape)
        self.dtype = np.dtype(ds.dtype).newbyteorder("=")
        self.ndim = len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        try:
            data = self._ds[key]
        except OSError as exc:
            reason = " ".join(str(exc).split())
            raise UnreadableFileError(self._source, f"cannot read the data ({reason})") from None
        return np.asarray(data).astype(self.dtype, copy=False)


def is_image_candidate(obj) -> bool:
    """A numeric dataset of 2 to 5 dimensions (Y, X plus up to Z, channel and time)."""
    return isinstance(obj, h5py.Dataset) and 2 <= obj.ndim <= 5 and obj.dtype.kind in "uifbc"


def image_datasets(h5: h5py.Group) -> list[str]:
    """Paths of the image datasets in the file (see :func:`is_image_candidate`), in file order.

    Uses ``visititems``, which recurses through hard links only: datasets behind external or
    soft links are not listed, and no other file is opened.
    """
    found: list[str] = []

    def visit(name: str, obj) -> None:
        if is_image_candidate(obj):
            found.append("/" + name)

    h5.visititems(visit)
    return found


def _open_problem(exc: OSError) -> str:
    text = " ".join(str(exc).split())
    cut = _TRUNCATED.search(text)
    if cut:
        held, claimed = int(cut.group(1)), int(cut.group(2))
        return f"the file is truncated: its header says it holds {claimed:,} bytes, but it has {held:,}"
    return f"not a readable HDF5 file ({text})"


#: Files opened through a Python file object and not closed yet: HDF5 must close them before
#: the interpreter tears their file objects down, or it crashes on exit (seen with the app).
_OPEN_FILES: weakref.WeakSet[h5py.File] = weakref.WeakSet()


@atexit.register
def _close_open_files() -> None:
    for h5 in list(_OPEN_FILES):
        # Already closed or half torn down: nothing left to protect.
        with contextlib.suppress(Exception):
            h5.close()


def open_checked(path: Path) -> tuple[h5py.File, BinaryIO]:
    """Open ``path`` read-only through a Python file object; returns the file and that object."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned open; the caller closes it after the HDF5 file
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot open the file ({exc.strerror or exc})") from None
    try:
        h5 = h5py.File(handle, "r")
        _OPEN_FILES.add(h5)
        return h5, handle
    except OSError as exc:
        handle.close()
        raise UnreadableFileError(path, _open_problem(exc)) from None
    except BaseException:
        handle.close()
        raise


def picked_dataset_path(candidates: list[str], path: Path) -> str:
    """The one candidate, or a clear error when there are none or several."""
    if not candidates:
        raise ImageContentError(
            path, "the file holds no 2D or 3D dataset (nor a 4D or 5D one with channel or time axes)"
        )
    if len(candidates) > 1:
        raise InputError(
            path, f"the file holds several image datasets ({', '.join(candidates)}); choose one as {path.name}:/dataset"
        )
    return candidates[0]
