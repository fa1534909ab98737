"""Where things live (bundled models, sample data, user folders) and defaults, in one place."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "emviewer"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_STACK_NAME = "sample_mito_stack.tif"


def bundled_models_dir() -> Path:
    """``models/`` beside the package, or ``$EMVIEWER_MODELS_DIR``."""
    return Path(os.environ.get("EMVIEWER_MODELS_DIR", PROJECT_ROOT / "models"))


def resources_dir() -> Path:
    return PROJECT_ROOT / "resources"


def sample_stack() -> Path:
    """The small SBEM stack shipped for a first start (a crop of the CDeep3M test images)."""
    return resources_dir() / SAMPLE_STACK_NAME


def user_data_dir() -> Path:
    """Per-user folder for trained models and settings (``$EMVIEWER_USER_DIR`` overrides it)."""
    return Path(os.environ.get("EMVIEWER_USER_DIR", platformdirs.user_data_path(APP_NAME)))


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
