"""Errors a user can cause: each names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A problem with the user's input, reported as ``"<file>: <problem>"``.

    The CLI prints it on one line and exits 2, the GUI shows it in a dialog and the
    server answers 4xx with it, so the message must make sense on its own.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class UnreadableFileError(InputError):
    """The file is missing, truncated, corrupt or of a format we cannot read."""


class ImageContentError(InputError):
    """The file reads, but its pixels break a rule (binary image, label values, size, dtype)."""


class ChannelChoiceError(ImageContentError):
    """The file holds several channels and nobody said which one to read.

    ``channels`` is how many there are and ``axes`` the stored axis order, so the app can
    ask for one and the CLI can name ``--channel N``.
    """

    def __init__(self, path, problem: str, channels: int, axes: str):
        super().__init__(path, problem)
        self.channels, self.axes = channels, axes


class ShapeMismatchError(InputError):
    """Two arrays that must line up (image and label, slices of a stack) do not."""


class PairingError(InputError):
    """Images and labels cannot be paired by the number in their file names."""


class InputWarning(UserWarning):
    """Something unusual in the user's input that does not stop the work (e.g. NaN pixels).

    Core code issues it with :func:`warnings.warn`, naming the file; the CLI prints it on
    one line, the app shows it in the status bar.
    """
