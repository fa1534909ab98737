"""Progress callbacks and cooperative cancellation for long-running core functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")

#: ``progress(done, total, message)``; the CLI maps it to tqdm, the GUI to signals.
Progress = Callable[[int, int, str], None]

#: What :class:`Estimate` says before any unit of work is done.
ESTIMATING = "estimating the time..."


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


def wait_for(future: Future[T], cancel: CancelToken | None, poll: float = 0.05) -> T:
    """The result of ``future``, or :class:`Cancelled` within ``poll`` seconds of a cancel.

    The computation itself is not stopped (a model call cannot be interrupted): it finishes
    on its own thread and its result is dropped, while the caller is free at once.
    """
    while True:
        try:
            return future.result(timeout=poll)
        except FutureTimeout:
            check(cancel)


def report(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, message)


def check(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` was cancelled."""
    if cancel is not None:
        cancel.raise_if_cancelled()


class Estimate:
    """Elapsed and remaining time of work counted in units of about equal cost.

    The remaining time is the mean time per unit so far times the units left, so the first
    unit done (e.g. one model call) already gives the whole run's estimate.

    Parameters
    ----------
    clock
        Seconds, monotonic; :func:`time.monotonic` by default.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: float | None = None

    def start(self) -> None:
        """Start the clock (once; later calls change nothing)."""
        if self._start is None:
            self._start = self._clock()

    def text(self, done: int, total: int) -> str:
        """``"12 s elapsed, about 3 min left"``, or :data:`ESTIMATING` before the first unit."""
        if self._start is None or done <= 0:
            return ESTIMATING
        elapsed = self._clock() - self._start
        left = elapsed * max(total - done, 0) / done
        return f"{duration_text(elapsed)} elapsed, about {duration_text(left)} left"


def duration_text(seconds: float) -> str:
    """Seconds as ``"42 s"``, ``"7 min"`` or ``"2 h 05 min"`` (rounded, for a progress line)."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


def carries_estimate(message: str) -> bool:
    """Whether a progress message already holds an :class:`Estimate`'s text."""
    return ESTIMATING in message or " left" in message
