"""Where things live (bundled models, sample data, user folders) and defaults, in one place."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

APP_NAME = "emviewer"
SAMPLE_STACK_NAME = "sample_mito_stack.tif"
#: The repository's ``models/`` and ``resources/``, mapped into the package by pyproject.toml.
BUNDLED_MODELS_PACKAGE = "emviewer.bundled_models"
RESOURCES_PACKAGE = "emviewer.resources"


def _package_folder(package: str) -> Path:
    """The folder of a data package: inside site-packages for a wheel, the repository's folder when editable.

    Installs unpack the package, so its files are plain files on disk (never inside a zip).
    """
    return Path(str(resources.files(package)))


def bundled_models_dir() -> Path:
    """The models shipped with the package (``models/`` of the repository), or ``$EMVIEWER_MODELS_DIR``."""
    override = os.environ.get("EMVIEWER_MODELS_DIR")
    return Path(override) if override else _package_folder(BUNDLED_MODELS_PACKAGE)


def resources_dir() -> Path:
    """The sample stack and the app's icon shipped with the package (``resources/`` of the repository)."""
    return _package_folder(RESOURCES_PACKAGE)


def sample_stack() -> Path:
    """The small SBEM stack shipped for a first start (a crop of the CDeep3M test images)."""
    return resources_dir() / SAMPLE_STACK_NAME


def user_data_dir() -> Path:
    """Per-user folder for trained models and settings (``$EMVIEWER_USER_DIR`` overrides it)."""
    return Path(os.environ.get("EMVIEWER_USER_DIR", platformdirs.user_data_path(APP_NAME)))


def user_cache_dir() -> Path:
    """Per-user folder for what can be made again, e.g. models converted for a faster runtime
    (``$EMVIEWER_CACHE_DIR`` overrides it)."""
    return Path(os.environ.get("EMVIEWER_CACHE_DIR", platformdirs.user_cache_path(APP_NAME)))


def user_models_dir() -> Path:
    """Where models trained by the user go, one sub-folder per object."""
    return user_data_dir() / "models"


def installed_models() -> list:
    """Bundled models first, then the user's, each with its card (reads the cards now)."""
    from .core.models.registry import list_models

    return list_models(bundled_models_dir(), user_models_dir())


def server_token_file() -> Path:
    """Where the app keeps the online-mode server token (readable by the user only)."""
    return user_data_dir() / "server-token"


def save_server_token(token: str) -> Path:
    """Write the token to :func:`server_token_file` with owner-only permissions (0600)."""
    path = server_token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".part")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
    return path


def load_server_token() -> str:
    """The saved token, or "" when none was saved."""
    try:
        return server_token_file().read_text().strip()
    except OSError:
        return ""
