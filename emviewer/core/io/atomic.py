"""Atomic writes: write to a temporary file beside the target, then rename it into place.

An interrupted or failed export therefore never leaves a half-written file behind, and an
existing file is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes owner-only files; outputs get normal permissions
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On any exception the temporary file is removed and nothing is left at ``path``
    (an existing file there is kept unchanged).
    """
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """All-or-nothing version of :func:`atomic_path` for a set of files (e.g. one PNG per slice)."""
    targets = [Path(p) for p in paths]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        temps = [_temp_beside(t) for t in targets]
        yield temps
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
