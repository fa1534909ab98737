"""Background jobs: core functions run on a thread pool and report through Qt signals.

Nothing heavy runs on the GUI thread. Each job gets a :class:`CancelToken`; the core checks
it between tiles or steps, so Cancel takes effect within about one tile.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import ReportedError
from ..core.progress import Cancelled, CancelToken


class JobSignals(QObject):
    """What a job tells the GUI; emitted from the worker thread, delivered in the GUI thread."""

    progressed = Signal(int, int, str, float)  # done, total, message, seconds left (-1 unknown)
    itemFinished = Signal(object)  # one result of a streaming job (e.g. a predicted slice)
    deviceFound = Signal(str)  # where a prediction job computes (this computer's device, or a server)
    warned = Signal(str)  # one line about the input, e.g. unlike the model's training data
    finished = Signal(object)  # the job's return value
    failed = Signal(str)  # a one-line message for a dialog
    cancelled = Signal()


class Job(QRunnable):
    """Runs ``work(progress, cancel, emit_item)`` on the thread pool.

    ``work`` may call ``emit_item(x)`` for each partial result; its return value goes to
    ``finished``. A :class:`ReportedError` (files, training, server) becomes ``failed`` with its message; a cancel
    becomes ``cancelled``; anything else ``failed`` with a short internal-error line.
    """

    def __init__(self, work: Callable[[Callable, CancelToken, Callable[[Any], None]], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.work: Callable[..., Any] = work  # PredictionJob's work takes a fourth argument
        self.signals = JobSignals()
        self.token = CancelToken()
        self._started = 0.0

    def cancel(self) -> None:
        self.token.cancel()

    def _progress(self, done: int, total: int, message: str) -> None:
        elapsed = time.monotonic() - self._started
        left = elapsed * (total - done) / done if done > 0 and total >= done else -1.0
        self.signals.progressed.emit(int(done), int(total), message, float(left))

    def _call_work(self) -> Any:
        return self.work(self._progress, self.token, self.signals.itemFinished.emit)

    def run(self) -> None:
        # The work runs on a new Python thread, never a reused one: TensorFlow caches the Python
        # thread state of each OS thread it is called from, and a Qt pool thread gets a new state
        # for every job, so TensorFlow in a second job on a reused pool thread would crash.
        thread = threading.Thread(target=self._run_work, name="emviewer-job", daemon=True)
        thread.start()
        thread.join()
        _running.discard(self)

    def _run_work(self) -> None:
        self._started = time.monotonic()
        try:
            result = self._call_work()
        except Cancelled:
            _tell(self.signals.cancelled)
        except ReportedError as exc:  # the user's files, training or the server: one line
            _tell(self.signals.failed, str(exc))
        except Exception as exc:  # a bug: keep the app alive and say what happened
            traceback.print_exc()
            _tell(self.signals.failed, f"internal error: {type(exc).__name__}: {exc}")
        else:
            _tell(self.signals.finished, result)


def _tell(signal, *args) -> None:
    """Emit the job's last word, unless Qt already deleted its signals (the app is quitting and
    no window is left to tell)."""
    try:
        signal.emit(*args)
    except RuntimeError:
        return


class PredictionJob(Job):
    """A :class:`Job` that also says where it computes: runs
    ``work(progress, cancel, emit_item, show_device, warn)``; ``show_device(text)`` emits ``deviceFound``
    and ``warn(line)`` emits ``warned``, so the stream of items holds results only."""

    def _call_work(self) -> Any:
        signals = self.signals
        return self.work(
            self._progress, self.token, signals.itemFinished.emit, signals.deviceFound.emit, signals.warned.emit
        )


#: Jobs still running: kept alive here so their signals outlive a closed window.
_running: set = set()


def start(job: Job, pool: QThreadPool | None = None) -> Job:
    """Queue ``job`` on ``pool`` (the global pool by default) and return it."""
    _running.add(job)
    (pool or QThreadPool.globalInstance()).start(job)
    return job
