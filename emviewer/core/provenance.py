"""What produced a result: software versions, date and parameters, for files and reports."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata

from .. import __version__
from .backend import keras_backend

_PACKAGES = ("numpy", "keras", "tensorflow", "openvino", "onnxruntime", "h5py", "tifffile", "Pillow")


def software_versions() -> dict[str, str]:
    """Versions of EMViewer, Python and the libraries that shape results (no heavy imports)."""
    backend = keras_backend()
    versions = {"emviewer": __version__, "python": platform.python_version(), "keras_backend": backend}
    for name in _PACKAGES + ((backend,) if backend in ("jax", "torch") else ()):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(**parameters) -> dict:
    """A provenance record: date (UTC, ISO 8601), software versions and the given parameters."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software": software_versions(),
        "parameters": {k: v for k, v in parameters.items() if v is not None},
    }
