"""Progress callbacks and cooperative cancellation for long-running core functions."""

from __future__ import annotations

import threading
from collections.abc import Callable

#: ``progress(done, total, message)``; the CLI maps it to tqdm, the GUI to signals.
Progress = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised inside a long function when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe flag a caller sets to ask a running job to stop at the next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, message)


def check(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` was cancelled."""
    if cancel is not None:
        cancel.raise_if_cancelled()
