"""JobManager on its own: a finished state is only shown once the job's files are settled.

A client that sees "cancelled" may check (or reuse the disk space of) the job's folder at
once. The deletion is slowed down here, as a busy disk would, so that a manager announcing the
state before deleting is caught every time rather than once in a while.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from live_server import wait_for

from emviewer.core.progress import CancelToken
from emviewer.remote.schemas import FINISHED_STATES, JobParameters, JobState
from emviewer.server import jobs as jobs_module
from emviewer.server.jobs import Job, JobManager, new_job_folder


@pytest.fixture
def slow_disk(monkeypatch):
    real_rmtree = shutil.rmtree

    def slow_rmtree(path, *args, **kwargs):
        time.sleep(0.3)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(jobs_module.shutil, "rmtree", slow_rmtree)


def make_job(root) -> Job:
    """A job whose input is its upload, really open (closed by the manager when the job ends)."""
    job_id, folder = new_job_folder(root)
    (folder / "input" / "stack.tif").write_bytes(b"upload")
    upload = (folder / "input" / "stack.tif").open("rb")
    return Job(job_id, folder, JobParameters(objects=["mito"]), (1, 8, 8), upload, 1)


def test_a_cancelled_running_job_has_no_files_once_it_says_cancelled(tmp_path, slow_disk):
    started = threading.Event()

    def runner(job: Job, progress, cancel: CancelToken):
        started.set()
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    manager = JobManager(runner, workers=1)
    try:
        job = make_job(tmp_path)
        manager.submit(job)
        assert started.wait(10)
        manager.cancel(job.id)
        assert wait_for(lambda: job.state in FINISHED_STATES and job.state, timeout=10) == JobState.cancelled
        assert not job.folder.exists()
    finally:
        manager.close()


def test_a_done_job_has_no_upload_once_it_says_done(tmp_path, slow_disk):
    def runner(job: Job, progress, cancel: CancelToken):
        result = job.folder / "result.h5"
        result.write_bytes(b"masks")
        return result

    manager = JobManager(runner, workers=1)
    try:
        job = make_job(tmp_path)
        manager.submit(job)
        assert wait_for(lambda: job.state in FINISHED_STATES and job.state, timeout=10) == JobState.done
        assert not (job.folder / "input").exists() and job.result.exists()
    finally:
        manager.close()


def test_a_failed_job_logs_its_traceback_and_tells_the_client_one_line(tmp_path, caplog):
    """A bug (not the user's file) fails the job: the server's log has the traceback, the
    client a one-line summary without the server's internals."""

    def runner(job: Job, progress, cancel: CancelToken):
        raise RuntimeError(f"internal detail {job.folder}")

    manager = JobManager(runner, workers=1)
    try:
        job = make_job(tmp_path)
        with caplog.at_level("ERROR", logger="emviewer.server"):
            manager.submit(job)
            assert wait_for(lambda: job.state in FINISHED_STATES and job.state, timeout=10) == JobState.failed
        assert "RuntimeError" in job.message and "\n" not in job.message and str(tmp_path) not in job.message
        failures = [r for r in caplog.records if job.id in r.getMessage()]
        assert failures and failures[0].exc_info and "internal detail" in str(failures[0].exc_info[1])
    finally:
        manager.close()


def test_the_input_is_closed_however_the_job_ends(tmp_path):
    """Done, failed, cancelled while running or waiting, refused by a full queue, or left waiting
    when the server stops: the job's input is closed."""
    release = threading.Event()

    def runner(job: Job, progress, cancel: CancelToken):
        assert not job.input.closed  # open while the job runs
        if job.parameters.slices == [1]:
            raise RuntimeError("a broken model")
        while not release.is_set():
            cancel.raise_if_cancelled()
            time.sleep(0.01)
        return job.folder / "result.h5"

    manager = JobManager(runner, workers=1, max_waiting=1)
    try:
        running, waiting, refused = make_job(tmp_path), make_job(tmp_path), make_job(tmp_path)
        manager.submit(running)
        assert wait_for(lambda: running.state == JobState.running, timeout=10)
        manager.submit(waiting)
        with pytest.raises(jobs_module.QueueFullError):
            manager.submit(refused)
        assert refused.input.closed and not waiting.input.closed
        manager.cancel(waiting.id)
        assert waiting.input.closed and not running.input.closed
        manager.cancel(running.id)
        assert wait_for(lambda: running.state == JobState.cancelled, timeout=10) and running.input.closed

        done, failed = make_job(tmp_path), make_job(tmp_path)
        failed.parameters = JobParameters(objects=["mito"], slices=[1])
        release.set()
        for job in (done, failed):
            manager.submit(job)
            assert wait_for(lambda job=job: job.state in FINISHED_STATES, timeout=10)
        assert (done.state, failed.state) == (JobState.done, JobState.failed)
        assert done.input.closed and failed.input.closed
    finally:
        manager.close()


def test_a_job_still_waiting_when_the_manager_closes_has_its_input_closed(tmp_path):
    def runner(job: Job, progress, cancel: CancelToken):
        while True:
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    manager = JobManager(runner, workers=1)
    running, waiting = make_job(tmp_path), make_job(tmp_path)
    manager.submit(running)
    assert wait_for(lambda: running.state == JobState.running, timeout=10)
    manager.submit(waiting)
    manager.close()
    assert running.input.closed and waiting.input.closed
