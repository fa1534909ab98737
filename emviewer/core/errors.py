"""Errors reported to the user in one line, each with its own exit status in the CLI.

| class | cause | CLI exit status |
| --- | --- | --- |
| :class:`InputError` | the user's files or options | 2 |
| :class:`TrainingError` | training stopped (e.g. the loss became NaN) | 3 |
| ``RemoteError`` (``emviewer.remote.client``) | the network or the server | 4 |

(1 is an internal error, a bug; 130 a cancelled run.)
"""

from __future__ import annotations

from pathlib import Path


class ReportedError(Exception):
    """A problem reported as ``"<where>: <problem>"`` on one line, never with a traceback.

    The CLI prints it and exits with ``exit_status``, the GUI shows it in a dialog, and the
    server answers 4xx with it, so the message must make sense on its own.
    """

    exit_status = 1

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class InputError(ReportedError):
    """A problem with the user's input (a file, a folder, an option), naming the file."""

    exit_status = 2


class TrainingError(ReportedError):
    """Training cannot go on (the loss diverged); ``path`` is the checkpoint folder."""

    exit_status = 3


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
