"""Jobs: results, errors and cancel reach the GUI thread.

(That TensorFlow survives consecutive jobs on a reused pool thread is shown by the train tab's
start-stop-resume tests, which crashed with a segmentation fault before jobs ran on their own
Python thread.)
"""

from __future__ import annotations

import re

from emviewer.core.errors import InputError
from emviewer.gui.workers import Job, PredictionJob, start


def test_items_result_and_errors_arrive_as_signals(qtbot):
    def work(progress, cancel, emit):
        for i in range(3):
            progress(i + 1, 3, f"step {i + 1}")
            emit(i)
        return "done"

    job = Job(work)
    items, steps = [], []
    job.signals.itemFinished.connect(items.append)
    job.signals.progressed.connect(lambda d, t, m, left: steps.append((d, t)))
    with qtbot.waitSignal(job.signals.finished) as finished:
        start(job)
    assert finished.args == ["done"] and items == [0, 1, 2] and steps[-1] == (3, 3)

    def bad(progress, cancel, emit):
        raise InputError("stack.tif", "the file is truncated")

    failing = Job(bad)
    with qtbot.waitSignal(failing.signals.failed) as failed:
        start(failing)
    assert failed.args == ["stack.tif: the file is truncated"]


def test_cancel_becomes_the_cancelled_signal(qtbot):
    def work(progress, cancel, emit):
        while True:
            cancel.raise_if_cancelled()

    job = Job(work)
    with qtbot.waitSignal(job.signals.cancelled, timeout=5000):
        start(job)
        job.cancel()


def test_a_prediction_job_says_its_device_on_its_own_signal(qtbot):
    def work(progress, cancel, emit, show_device, warn):
        show_device("Keras 3 (tensorflow) on CPU")
        for i in range(2):
            emit(i)

    job = PredictionJob(work)
    items, devices = [], []
    job.signals.itemFinished.connect(items.append)
    job.signals.deviceFound.connect(devices.append)
    with qtbot.waitSignal(job.signals.finished):
        start(job)
    assert items == [0, 1] and devices == ["Keras 3 (tensorflow) on CPU"]


def test_the_status_bar_names_the_runtime_that_computes(monkeypatch):
    from emviewer.gui.prediction_work import device_text

    monkeypatch.setenv("EMVIEWER_RUNTIME", "openvino")
    assert re.fullmatch(r"OpenVINO \d{4}\.\d+\.\d+ on CPU \(\d+ cores?\)", device_text())
    monkeypatch.setenv("EMVIEWER_RUNTIME", "keras")
    assert device_text().startswith("Keras 3.")
