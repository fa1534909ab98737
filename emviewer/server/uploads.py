"""Streaming a multipart upload straight into a job's folder, within the job's budget.

The body is parsed as it arrives (python-multipart, linear in the body), so a file is never
held in memory and an upload over a limit (bytes, parts) is refused as soon as the limit is
passed, not after. The parsing and the file writes run in a worker thread: the event loop
only receives bytes, so the API stays live under an upload of many small parts.

File names from the client never name a server-side path: each file is written under a
name made by :func:`upload_names` (no folders, no odd characters, never two clients' names
collapsed into one), and the folder's natural order is the natural order of the client's
names, as reading that folder locally would give.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, BinaryIO

from anyio import to_thread
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:  # defined for type checkers only
    from python_multipart.multipart import MultipartCallbacks

from ..core.io.common import natural_key

MAX_FIELD_BYTES = 64 * 1024
#: Longest name kept as the client sent it; longer ones are shortened (with an index).
MAX_NAME_CHARS = 200
_SAFE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_NAME_CHARS - 1}}}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(Exception):
    """The upload is malformed or too large; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# ---------------------------------------------------------------- names


def base_name(name: str) -> str:
    """The client's file name without any folder (POSIX or Windows), e.g. ``C:\\a\\b.png`` -> ``b.png``."""
    return PureWindowsPath(PurePosixPath(name).name).name


def _clean(text: str) -> str:
    """``text`` in safe characters: accents dropped (``é`` -> ``e``), other runs -> ``_``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _UNSAFE_RUN.sub("_", ascii_text).strip("._-")


def _indexed_name(name: str, rank: int, width: int) -> str:
    """``<rank>_<safe stem><safe suffix>``, e.g. ``07_cafe.png`` for ``café.png`` ranked 7 of 10-99."""
    suffix = PurePosixPath(name).suffix
    stem = _clean(name[: len(name) - len(suffix)])[: MAX_NAME_CHARS // 2]
    suffix = _clean(suffix)[:16]
    return f"{rank:0{width}d}" + (f"_{stem}" if stem else "") + (f".{suffix}" if suffix else "")


def upload_names(client_names: Sequence[str]) -> list[str]:
    """Server-side file names for the files of one upload, in upload order.

    Names that are all safe already (letters, digits, ``._-``, not starting with a dot, at
    most :data:`MAX_NAME_CHARS`, distinct even ignoring case) are kept as they are. Otherwise
    every file is named ``<index>_<safe stem><suffix>``, where the zero-padded index (from 1)
    is the file's place in the natural order of the client's names (ties: upload order), so
    different names never collapse (``α.png``, ``β.png`` -> ``1.png``, ``2.png``) and the
    folder's natural order stays the client's (``slice_1``, ``slice_2``, ``slice_10``).

    Parameters
    ----------
    client_names
        The file names as the client sent them; folders are dropped (:func:`base_name`).

    Returns
    -------
    list of str
        One distinct base name per file, in the order of ``client_names``; each keeps the
        client's suffix (it says the format), cleaned to safe characters.

    Raises
    ------
    UploadError
        422 for an empty name, or the same name sent twice.
    """
    names = [base_name(n) for n in client_names]
    seen: set[str] = set()
    for name in names:
        _check_new(name, seen)
    folded = {n.casefold() for n in names}
    if len(folded) == len(names) and all(_SAFE_NAME.fullmatch(n) for n in names):
        return names
    order = sorted(range(len(names)), key=lambda i: natural_key(names[i]))  # stable: ties keep upload order
    width = len(str(len(names)))
    result = [""] * len(names)
    for rank, i in enumerate(order, start=1):
        result[i] = _indexed_name(names[i], rank, width)
    return result


def _check_new(name: str, seen: set[str]) -> None:
    """Refuse an empty or repeated base name; ``seen`` collects the names so far."""
    if not name:
        raise UploadError(422, "every uploaded file needs a file name (its suffix says the format)")
    if name in seen:
        raise UploadError(422, f"file name {name!r} is sent twice")
    seen.add(name)


# ---------------------------------------------------------------- parsing


@dataclass
class ReceivedForm:
    """Text fields (decoded) and the files written to the folder, in the stack's order."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


class _Receiver:
    """python-multipart callbacks that route each part to a text field or a file.

    Runs in a worker thread. Per part the work is constant (sets, one file open), so the
    whole upload is linear in its size and number of parts.
    """

    def __init__(self, folder: Path, file_field: str, max_parts: int) -> None:
        self.folder, self.file_field, self.max_parts = folder, file_field, max_parts
        self.fields: dict[str, str] = {}
        self.client_names: list[str] = []
        self._seen: set[str] = set()
        self._parts = 0
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._text: bytearray | None = None
        self._file: BinaryIO | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add_header(d[s:e], name=True),
            "on_header_value": lambda d, s, e: self._add_header(d[s:e], name=False),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise UploadError(
                413,
                f"the upload has more than {self.max_parts} parts (files and form fields), the server's limit; "
                "send the slices as one stack file (TIFF, HDF5 or Zarr zip) instead",
            )
        self._headers, self._header_name, self._header_value = {}, b"", b""

    def _add_header(self, data: bytes, name: bool) -> None:
        if name:
            self._header_name += data
        else:
            self._header_value += data

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self._name == self.file_field:
            self._open_file(filename.decode("utf-8", "replace") if filename else "")
        elif filename is not None:
            raise UploadError(422, f"unexpected file field {self._name!r}; send files as {self.file_field!r}")
        else:
            self._text = bytearray()

    def _open_file(self, client_name: str) -> None:
        _check_new(base_name(client_name), self._seen)
        # A hidden temporary name: never a final name, never read as a slice; renamed at the end.
        # Stays open across the parser's callbacks: closed at the part's end.
        self._file = open(self.folder / f".part{len(self.client_names)}", "wb")  # noqa: SIM115
        self.client_names.append(client_name)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise UploadError(413, f"form field {self._name!r} is over {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._text is not None:
            try:
                self.fields[self._name or ""] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(422, f"form field {self._name!r} is not UTF-8 text") from None
            self._text = None

    def finish(self, parser: MultipartParser) -> ReceivedForm:
        """End the parse, then give each file its name (:func:`upload_names`)."""
        parser.finalize()
        if self._file is not None or self._text is not None:
            raise UploadError(400, "malformed multipart body (it ends inside a part)")
        names = upload_names(self.client_names)
        files = [self.folder / name for name in names]
        for index, path in enumerate(files):
            os.replace(self.folder / f".part{index}", path)
        order = sorted(range(len(files)), key=lambda i: natural_key(names[i]))
        return ReceivedForm(self.fields, [files[i] for i in order])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_form(
    chunks: AsyncIterator[bytes], content_type: str, folder: Path, max_bytes: int, file_field: str, *, max_parts: int
) -> ReceivedForm:
    """Parse a ``multipart/form-data`` body from ``chunks`` into ``folder``, off the event loop.

    Parameters
    ----------
    chunks
        The body as it arrives (e.g. ``request.stream()``).
    content_type
        The request's ``Content-Type`` header (with the boundary).
    folder
        An existing, empty folder; the files are written there under :func:`upload_names`.
    max_bytes, max_parts
        The budget: body bytes, and parts (files and text fields together).
    file_field
        The form field whose parts are files; every other field is text.

    Returns
    -------
    ReceivedForm
        The text fields, and the files in the order of the stack they make.

    Raises
    ------
    UploadError
        413 the moment more than ``max_bytes`` have arrived or the part after ``max_parts``
        begins; 415 for a body that is not multipart; 400 for a malformed body; 422 for a form
        that breaks the rules (a file without a name, the same name twice, a file under another
        field). The caller removes ``folder`` on any error.
    OSError
        The server could not write the files (e.g. its disk is full): not the client's fault.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the upload as multipart/form-data")
    receiver = _Receiver(folder, file_field, max_parts)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = 0
    try:
        async for chunk in chunks:  # uvicorn gathers what arrives meanwhile: chunks grow under load
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(413, f"upload is over the server's limit of {max_bytes} bytes")
            await to_thread.run_sync(parser.write, chunk)  # waits for the thread even when cancelled
        return await to_thread.run_sync(receiver.finish, parser)
    except (UploadError, OSError):
        raise
    except Exception as exc:  # python-multipart raises several kinds for a malformed body
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__})") from None
    finally:
        receiver.close()
