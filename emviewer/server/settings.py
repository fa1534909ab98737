"""Server settings with their defaults, in one place."""

from __future__ import annotations

import ipaddress
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError, InputWarning

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "EMVIEWER_TOKEN"
TOKEN_BYTES = 32  # random bytes in a new token: 43 URL-safe characters
_MAKE_ONE = "make one with: emviewer serve --new-token FILE"


@dataclass
class ServerSettings:
    """How the server runs.

    ``token`` None means no authentication, allowed on a loopback address only.
    ``models_dir``/``user_models_dir`` None mean the installed models (``config``).
    ``work_dir`` None means a fresh temporary folder, deleted at shutdown.

    The job budget (each refused with 413 naming the limit): ``max_parts`` parts in one
    multipart upload; ``max_decoded_bytes`` of image data once decoded (voxels x channels x
    bytes per sample, so a small compressed file cannot claim gigabytes); ``max_slices``
    slices predicted per job. ``min_token_length`` applies when listening beyond loopback.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_upload_bytes: int = 4 * 1024**3
    result_ttl: float = 3600.0
    max_waiting: int = 32
    workers: int = 1
    work_dir: Path | None = None
    models_dir: Path | None = None
    user_models_dir: Path | None = None
    max_parts: int = 10_000
    max_decoded_bytes: int = 16 * 1024**3
    max_slices: int = 10_000
    min_token_length: int = 16

    def check(self) -> None:
        """Refuse to serve beyond loopback without a token, or with one under ``min_token_length``.

        On a loopback address any token (or none) is allowed: only this machine's users reach it.

        Raises
        ------
        InputError
            One line naming the problem and how to make a token.
        """
        if is_loopback(self.host):
            return
        if not self.token:
            problem = f"without a token: give --token-file FILE or set {TOKEN_ENV}"
        elif len(self.token) < self.min_token_length:
            problem = f"with a {len(self.token)}-character token ({self.min_token_length}+ needed beyond loopback)"
        else:
            return
        raise InputError(None, f"refusing to serve on {self.host} {problem}; {_MAKE_ONE}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: str | None) -> str | None:
    """The token from ``token_file`` (its first word), else ``$EMVIEWER_TOKEN``, else None.

    Warns (:class:`InputWarning`, one line) when other users may open the file.

    Raises
    ------
    InputError
        The file cannot be read or holds no token.
    """
    if token_file:
        path = Path(token_file)
        try:
            words = path.read_text().split()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot read the token file ({exc})") from None
        token = words[0] if words else ""
        if not token:
            raise InputError(path, "the token file is empty")
        if os.name == "posix" and mode & 0o077:
            message = f"{path}: other users may open the token file (mode {mode & 0o777:o}); chmod 600 it"
            warnings.warn(message, InputWarning, stacklevel=2)
        return token
    return os.environ.get(TOKEN_ENV) or None


def new_token() -> str:
    """A random token: ``TOKEN_BYTES`` bytes as URL-safe text (43 characters of ``A-Za-z0-9_-``).

    Never starts with ``-``, so ``--token TOKEN`` on a command line is not taken for an option.
    """
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if not token.startswith("-"):
            return token


def write_new_token(path: str | Path) -> Path:
    """Write :func:`new_token` and a newline to ``path``, a new file created with mode 0600.

    The file is created with owner-only permissions by ``open(2)`` itself (no moment with
    wider ones) and ``O_EXCL``, so an existing file or link there is never overwritten.

    Returns
    -------
    Path
        ``path`` as given.

    Raises
    ------
    InputError
        ``path`` exists (file or link) or cannot be created.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(path, "already exists; not overwritten: remove it or choose another file") from None
    except OSError as exc:
        raise InputError(path, f"cannot create the token file ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new_token() + "\n")
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written token left to be used later
        raise
    return path
