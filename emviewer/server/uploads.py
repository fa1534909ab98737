"""Streaming a multipart upload straight into a job's folder, with a size limit.

The body is parsed as it arrives (python-multipart), so a file is never held in memory
and an upload over the limit is refused as soon as the limit is passed, not after.
File names from the client are reduced to a safe base name inside the job folder: the
client can never name a server-side path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import AsyncIterator, BinaryIO, Optional

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024
MAX_FILES = 20_000


class UploadError(Exception):
    """The upload is malformed or too large; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def safe_name(name: str) -> str:
    """A client's file name reduced to a harmless base name (no folders, no odd characters)."""
    base = PureWindowsPath(PurePosixPath(name).name).name
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return cleaned[:200]


@dataclass
class ReceivedForm:
    """Text fields (decoded) and the files written to the folder, in upload order."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


class _Receiver:
    """python-multipart callbacks that route each part to a text field or a file."""

    def __init__(self, folder: Path, file_field: str) -> None:
        self.folder, self.file_field = folder, file_field
        self.form = ReceivedForm()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: Optional[str] = None
        self._text: Optional[bytearray] = None
        self._file: Optional[BinaryIO] = None

    def callbacks(self) -> dict:
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
            self._open_file(safe_name(filename.decode("utf-8", "replace")) if filename else "")
        elif filename is not None:
            raise UploadError(422, f"unexpected file field {self._name!r}; send files as {self.file_field!r}")
        else:
            self._text = bytearray()

    def _open_file(self, name: str) -> None:
        if not name:
            raise UploadError(422, "every uploaded file needs a file name (its suffix says the format)")
        if len(self.form.files) >= MAX_FILES:
            raise UploadError(422, f"too many files (at most {MAX_FILES})")
        path = self.folder / name
        if path in self.form.files:
            raise UploadError(422, f"file name {name!r} is sent twice")
        self._file = open(path, "wb")
        self.form.files.append(path)

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
                self.form.fields[self._name or ""] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(422, f"form field {self._name!r} is not UTF-8 text") from None
            self._text = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_form(
    chunks: AsyncIterator[bytes], content_type: str, folder: Path, max_bytes: int, file_field: str
) -> ReceivedForm:
    """Parse a ``multipart/form-data`` body from ``chunks`` into ``folder``.

    Raises :class:`UploadError` (413) the moment more than ``max_bytes`` have arrived, and
    (4xx) for a body that is not multipart or breaks the form's rules.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the upload as multipart/form-data")
    receiver = _Receiver(folder, file_field)
    parser = MultipartParser(boundary, receiver.callbacks())
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(413, f"upload is over the server's limit of {max_bytes} bytes")
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # python-multipart raises several kinds for a malformed body
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__})") from None
    finally:
        receiver.close()
    return receiver.form
