"""Prediction jobs: a bounded queue, worker threads, progress, cancel and expiry.

Each job owns a temporary folder (``input/`` upload, ``result/`` HDF5) and its input, opened
once when the upload was checked: the manager closes the input when the job ends (done,
failed, cancelled, refused by a full queue, or the server stopping). The upload is
deleted when the job finishes; a finished job and its result are deleted ``result_ttl``
seconds later, and a cancelled job at once. Workers run jobs one at a time each, so one
worker means one job on the GPU at a time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..core.errors import InputError
from ..core.progress import Cancelled, CancelToken
from ..remote.schemas import FINISHED_STATES, JobParameters, JobState, JobStatus

log = logging.getLogger("emviewer.server")

#: Lines about the input kept per job (a job warns at most once per object).
MAX_WARNINGS = 8

#: Runs one job: (job, progress callback, cancel token) -> path of the result file.
Runner = Callable[["Job", Callable[[int, int, str], None], CancelToken], Path]


class JobInput(Protocol):
    """What a job reads, opened before it is queued; :class:`JobManager` closes it once the job ends."""

    def close(self) -> None: ...


class QueueFullError(Exception):
    """Too many jobs are waiting; the client should try again later."""


@dataclass
class Job:
    id: str
    folder: Path
    parameters: JobParameters
    shape: tuple[int, int, int]
    input: JobInput
    n_slices: int
    created: float = field(default_factory=time.time)
    state: JobState = JobState.queued
    done: int = 0
    total: int = 0
    message: str = "waiting in the queue"
    started: float | None = None
    finished: float | None = None
    expires: float | None = None
    result: Path | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    warnings: list[str] = field(default_factory=list)

    def warn(self, line: str) -> None:
        """Keep a line about the input for the client (the first few; prediction gives one per object)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(line)

    def status(self) -> JobStatus:
        now = time.time()
        queued_until = self.started or ((self.finished or now) if self.state in FINISHED_STATES else now)
        return JobStatus(
            id=self.id,
            state=self.state,
            done=self.done,
            total=self.total,
            message=self.message,
            objects=list(self.parameters.objects),
            slices=self.n_slices,
            shape=list(self.shape),
            created=self.created,
            queued_seconds=round(queued_until - self.created, 3),
            running_seconds=round((self.finished or now) - self.started, 3) if self.started else None,
            expires=self.expires,
            warnings=list(self.warnings),
        )


def new_job_folder(root: Path) -> tuple[str, Path]:
    """A fresh job id and its empty folder under ``root``."""
    job_id = uuid.uuid4().hex
    folder = root / job_id
    (folder / "input").mkdir(parents=True)
    return job_id, folder


class JobManager:
    """Holds the jobs, feeds the worker threads and deletes expired jobs."""

    def __init__(self, runner: Runner, workers: int = 1, max_waiting: int = 16, result_ttl: float = 3600.0) -> None:
        self._runner, self._ttl = runner, result_ttl
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_waiting)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"emviewer-job-{i}", daemon=True) for i in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._sweep_loop, name="emviewer-expiry", daemon=True))
        for thread in self._threads:
            thread.start()

    # ---------------------------------------------------------------- requests

    def submit(self, job: Job) -> None:
        """Queue ``job``; from here the manager closes its input (at once if the queue is full).

        Raises
        ------
        QueueFullError
            ``max_waiting`` jobs are already waiting.
        """
        with self._lock:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                job.input.close()
                raise QueueFullError(f"{self._queue.maxsize} jobs are already waiting; try again later") from None
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        self.sweep()
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a waiting or running job and delete its files; a finished job is deleted whole."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state in FINISHED_STATES:
                self._forget(job)
            elif job.state == JobState.queued:
                job.input.close()
                self._finish(job, JobState.cancelled, "cancelled")
                shutil.rmtree(job.folder, ignore_errors=True)
            else:
                job.cancel.cancel()  # the worker stops at its next tile and deletes the files
                job.message = "cancelling"
            return job

    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Stop the workers (a running job is cancelled) and delete every job's files."""
        self._stop.set()
        with self._lock:
            for job in list(self._jobs.values()):
                job.cancel.cancel()
        for _ in self._threads:
            with contextlib.suppress(queue.Full):  # a full queue: the workers see _stop instead
                self._queue.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            for job in list(self._jobs.values()):
                self._forget(job)

    # ---------------------------------------------------------------- workers

    def _work(self) -> None:
        while not self._stop.is_set():
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != JobState.queued:
                    continue  # cancelled while waiting
                job.state, job.started, job.message = JobState.running, time.time(), "starting"
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int, message: str) -> None:
            job.done, job.total, job.message = done, total, message

        try:
            try:
                result = self._runner(job, progress, job.cancel)
            finally:
                job.input.close()  # before its files are deleted (Windows cannot delete an open file)
        except Cancelled:
            # Files go first: a client that sees "cancelled" may rely on them being gone.
            shutil.rmtree(job.folder, ignore_errors=True)
            with self._lock:
                self._finish(job, JobState.cancelled, "cancelled")
            return
        except InputError as exc:
            log.warning("job %s refused: %s", job.id, exc)
            outcome, message, result = JobState.failed, str(exc), None
        except Exception as exc:  # a bug or a broken model: the log has the traceback, the user a summary
            log.exception("job %s failed", job.id)
            outcome, message, result = (
                JobState.failed,
                f"prediction failed on the server ({type(exc).__name__}); the server's log has the details",
                None,
            )
        else:
            outcome, message = JobState.done, "done"
        shutil.rmtree(job.folder / "input", ignore_errors=True)
        with self._lock:
            job.result = result
            self._finish(job, outcome, message)

    def _finish(self, job: Job, state: JobState, message: str) -> None:
        job.state, job.message, job.finished = state, message, time.time()
        job.expires = job.finished + self._ttl

    def _forget(self, job: Job) -> None:
        job.input.close()  # a job still waiting when the server stops
        self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    # ---------------------------------------------------------------- expiry

    def sweep(self) -> None:
        """Delete finished jobs whose time is up."""
        now = time.time()
        with self._lock:
            for job in [j for j in self._jobs.values() if j.expires is not None and j.expires <= now]:
                self._forget(job)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(min(max(self._ttl / 4, 0.05), 30.0)):
            self.sweep()
