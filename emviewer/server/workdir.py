"""The server's work folder: locked while the server runs, and what a killed server left
behind removed at the next start.

Without a configured folder each server makes ``<tmp>/emviewer-server-XXXX``; with one
(``ServerSettings.work_dir``) the server owns that folder and its job folders (32 hex
digits). Either way the folder holds a lock file, locked (``flock``) for the server's
life: the operating system drops the lock when the process dies, even by ``kill -9``, so a
folder whose lock can be taken belongs to no running server and its uploads are removed.
Only folders with this prefix, owned by this user, are ever touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

from ..core.errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no flock; left-overs of killed servers stay in the temp folder
    fcntl = None  # type: ignore[assignment]  # the module's stand-in where there is none

log = logging.getLogger("emviewer.server")

PREFIX = "emviewer-server-"
LOCK_NAME = ".emviewer-server.lock"
JOB_FOLDER = re.compile(r"^[0-9a-f]{32}$")
#: A folder of ours without a lock file is a server between mkdtemp and locking, or one from
#: before the lock existed; only the second is old.
UNLOCKED_GRACE_S = 600.0


def _try_lock(folder: Path) -> IO | None:
    """The folder's lock, held through the returned file; None when another process holds it."""
    handle = open(folder / LOCK_NAME, "a")  # noqa: SIM115 - returned open: the lock lasts as long as the file
    if fcntl is None:
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _ours(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink() and (not hasattr(os, "getuid") or info.st_uid == os.getuid())


def remove_orphans(temp_root: Path) -> list[Path]:
    """Remove ``temp_root/emviewer-server-*`` folders no running server holds; returns them."""
    removed = []
    if fcntl is None:
        return removed
    for folder in sorted(temp_root.glob(PREFIX + "*")):
        if not _ours(folder):
            continue
        if not (folder / LOCK_NAME).exists():
            if time.time() - folder.lstat().st_mtime < UNLOCKED_GRACE_S:
                continue
        else:
            lock = _try_lock(folder)
            if lock is None:
                continue  # a live server's
            lock.close()
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class WorkFolder:
    """The folder jobs live in, held for the server's life; :meth:`close` lets it go."""

    def __init__(self, path: Path, owned: bool, lock: IO | None) -> None:
        self.path, self.owned = path, owned
        self._lock: IO | None = lock

    @classmethod
    def open(cls, configured: Path | None = None, temp_root: Path | None = None) -> WorkFolder:
        """Take ``configured`` (removing job folders a killed server left there), or make a
        fresh temporary folder after removing orphaned ones.

        Raises
        ------
        InputError
            ``configured`` is held by another running server, or cannot be made.
        """
        if configured is None:
            root = Path(temp_root or tempfile.gettempdir())
            for folder in remove_orphans(root):
                log.info("removed %s, left by a server that is no longer running", folder)
            path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
            return cls(path, True, _try_lock(path))
        path = Path(configured)
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = _try_lock(path)
        except OSError as exc:
            raise InputError(path, f"cannot use as the work folder ({exc.strerror or exc})") from None
        if lock is None:
            raise InputError(path, "this work folder is in use by another EMViewer server")
        for child in path.iterdir():
            if JOB_FOLDER.match(child.name) and _ours(child):
                shutil.rmtree(child, ignore_errors=True)
                log.info("removed job folder %s, left by an earlier run", child.name)
        return cls(path, False, lock)

    def close(self) -> None:
        """Remove the folder if the server made it, and release the lock."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
