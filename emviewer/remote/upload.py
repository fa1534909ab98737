"""A multipart/form-data body read from disk piece by piece, with a known length.

``requests`` would build the whole body in memory for ``files=``; a stack can be gigabytes,
so this body is a file-like object that streams the files and reports upload progress.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO


class MultipartBody:
    """``read(n)``-able body of text fields and files, in that order; ``len()`` is its size."""

    def __init__(
        self,
        fields: dict[str, str],
        files: Sequence[tuple[str, Path]],
        on_read: Callable[[int, int], None] | None = None,
    ) -> None:
        self.boundary = uuid.uuid4().hex
        self._parts: list[bytes | Path] = []
        for name, value in fields.items():
            self._parts.append(
                self._header(name) + b"Content-Type: application/json\r\n\r\n" + value.encode() + b"\r\n"
            )
        for name, path in files:
            self._parts.append(self._header(name, path.name) + b"Content-Type: application/octet-stream\r\n\r\n")
            self._parts += [Path(path), b"\r\n"]
        self._parts.append(f"--{self.boundary}--\r\n".encode())
        self._size = sum(os.path.getsize(p) if isinstance(p, Path) else len(p) for p in self._parts)
        self._on_read, self._sent = on_read, 0
        self._index = 0
        self._file: BinaryIO | None = None

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _header(self, name: str, filename: str | None = None) -> bytes:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        return f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n".encode()

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        size = size if size and size > 0 else 1 << 20
        while self._index < len(self._parts):
            part = self._parts[self._index]
            if isinstance(part, bytes):
                self._index += 1
                return self._count(part)
            if self._file is None:
                self._file = open(part, "rb")  # noqa: SIM115 - read over several calls; closed at its end or by close()
            chunk = self._file.read(size)
            if chunk:
                return self._count(chunk)
            self._file.close()
            self._file, self._index = None, self._index + 1
        return b""

    def _count(self, chunk: bytes) -> bytes:
        self._sent += len(chunk)
        if self._on_read:
            self._on_read(self._sent, self._size)
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
