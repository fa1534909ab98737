"""Server settings with their defaults, in one place."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "EMVIEWER_TOKEN"


@dataclass
class ServerSettings:
    """How the server runs.

    ``token`` None means no authentication, allowed on a loopback address only.
    ``models_dir``/``user_models_dir`` None mean the installed models (``config``).
    ``work_dir`` None means a fresh temporary folder, deleted at shutdown.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: Optional[str] = None
    max_upload_bytes: int = 4 * 1024**3
    result_ttl: float = 3600.0
    max_waiting: int = 32
    workers: int = 1
    work_dir: Optional[Path] = None
    models_dir: Optional[Path] = None
    user_models_dir: Optional[Path] = None

    def check(self) -> None:
        """Refuse to serve a non-loopback address without a token."""
        if not self.token and not is_loopback(self.host):
            raise InputError(None, f"refusing to serve on {self.host} without a token: give --token-file FILE or set {TOKEN_ENV}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(token_file: Optional[str]) -> Optional[str]:
    """The token from ``token_file`` (first line), else ``$EMVIEWER_TOKEN``, else None."""
    if token_file:
        path = Path(token_file)
        try:
            words = path.read_text().split()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(path, f"cannot read the token file ({exc})") from None
        token = words[0] if words else ""
        if not token:
            raise InputError(path, "the token file is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None
