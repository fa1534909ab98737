"""What the app remembers between starts (QSettings): window geometry and layout, each object's
overlay opacity and colour, the contrast of the last stack, the last folder used and the last
export format.

QSettings gives values back untyped (an INI file returns numbers as strings and a one-item list
as its item; a hand-edited or older file may hold anything), so every reader converts its value
and falls back to the default on anything malformed, never raising.

Contrast is remembered for the stack it was set on only: grey values mean different things in
another stack (8-bit, 16-bit, float, another microscope), where the stack's own percentiles (what
opening a stack sets) are the sensible start. Reopening the same file restores its limits.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

from ..core.objects import OBJECTS
from .session import Session

GEOMETRY, STATE = "window/geometry", "window/state"
LAST_FOLDER = "files/last_folder"
EXPORT_FORMAT = "export/format"
CONTRAST_SOURCE, CONTRAST_LEVELS = "contrast/source", "contrast/levels"
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


# ------------------------------------------------------------------ defensive readers


def read_float(value, default: float, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[low, high]`` (a number or its text), else ``default``."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) and low <= number <= high else default


def read_colour(value) -> tuple[int, int, int] | None:
    """``"#rrggbb"`` (as stored) or three numbers 0-255 as an RGB tuple; None when malformed."""
    if isinstance(value, str):
        match = _HEX.fullmatch(value.strip())
        if match is None:
            return None
        digits = match.group(1)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    if isinstance(value, (list, tuple)) and len(value) == 3:
        channels = [read_float(c, -1.0, 0.0, 255.0) for c in value]
        return None if min(channels) < 0 else (int(channels[0]), int(channels[1]), int(channels[2]))
    return None


def _bytes(value) -> QByteArray | None:
    if isinstance(value, QByteArray):
        return value
    if isinstance(value, (bytes, bytearray)):
        return QByteArray(bytes(value))
    return None


# ------------------------------------------------------------------ window


def save_window(window: QMainWindow, settings: QSettings) -> None:
    """Remember the window's geometry (size, position, maximised) and its docks and toolbars."""
    settings.setValue(GEOMETRY, window.saveGeometry())
    settings.setValue(STATE, window.saveState())


def restore_window(window: QMainWindow, settings: QSettings) -> bool:
    """Put the window back as :func:`save_window` left it; False (the window unchanged) when
    nothing valid was stored. Call once the docks and toolbars exist."""
    geometry, state = _bytes(settings.value(GEOMETRY)), _bytes(settings.value(STATE))
    restored = geometry is not None and window.restoreGeometry(geometry)
    if state is not None:
        window.restoreState(state)
    return bool(restored)


# ------------------------------------------------------------------ display


def save_display(session: Session, settings: QSettings) -> None:
    """Remember each object's opacity and colour, and the contrast of the open stack."""
    for key in OBJECTS:
        settings.setValue(f"display/{key}/opacity", float(session.opacity[key]))
        red, green, blue = session.colours[key]
        settings.setValue(f"display/{key}/colour", f"#{red:02x}{green:02x}{blue:02x}")
    if session.volume is not None:
        settings.setValue(CONTRAST_SOURCE, str(session.volume.source))
        settings.setValue(CONTRAST_LEVELS, f"{session.levels[0]!r} {session.levels[1]!r}")


def restore_display(session: Session, settings: QSettings) -> None:
    """Set each object's remembered opacity and colour (malformed ones keep the session's)."""
    for key in OBJECTS:
        opacity = read_float(settings.value(f"display/{key}/opacity"), -1.0, 0.0, 1.0)
        if opacity >= 0:
            session.set_opacity(key, opacity)
        colour = read_colour(settings.value(f"display/{key}/colour"))
        if colour is not None:
            session.set_colour(key, colour)


def restore_levels(session: Session, settings: QSettings) -> bool:
    """Set the remembered contrast if the open stack is the one it was set on (connect to
    ``Session.volumeChanged``); returns whether it did. Another stack keeps its auto levels."""
    if session.volume is None or str(settings.value(CONTRAST_SOURCE, "")) != str(session.volume.source):
        return False
    text = settings.value(CONTRAST_LEVELS, "")
    parts = text.split() if isinstance(text, str) else []
    levels = [read_float(part, math.nan) for part in parts]
    if len(levels) != 2 or not all(math.isfinite(v) for v in levels) or levels[0] >= levels[1]:
        return False
    session.set_levels(levels[0], levels[1])
    return True


# ------------------------------------------------------------------ folders and export format


def last_folder(settings: QSettings) -> str:
    """The folder last opened from or exported to, if it still exists; else ``""`` (the dialog's
    own default)."""
    value = settings.value(LAST_FOLDER, "")
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else ""
    if not isinstance(value, str) or not value:
        return ""
    return value if Path(value).is_dir() else ""


def remember_folder(settings: QSettings, path) -> None:
    """Remember the folder of ``path``: a folder itself, a file's (or a new file's) parent."""
    if not path:
        return
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    settings.setValue(LAST_FOLDER, str(folder))


def last_export_format(settings: QSettings, choices) -> str | None:
    """The export format last written, if it is one of ``choices``; else None."""
    value = settings.value(EXPORT_FORMAT, "")
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else ""
    return value if isinstance(value, str) and value in choices else None


def remember_export_format(settings: QSettings, fmt: str) -> None:
    settings.setValue(EXPORT_FORMAT, str(fmt))
