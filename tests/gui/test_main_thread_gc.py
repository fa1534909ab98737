"""Reference cycles made on a worker thread are freed on the GUI thread, never on the worker."""

from __future__ import annotations

import gc
import threading

from emviewer.gui.main_thread_gc import MainThreadCollector


def test_cycles_made_on_a_worker_thread_are_freed_on_the_gui_thread(qtbot):
    freed_on_gui_thread = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed_on_gui_thread.append(threading.current_thread() is threading.main_thread())

    def make_garbage():
        for _ in range(20_000):  # far past the youngest generation's threshold
            Cycle()

    worker = threading.Thread(target=make_garbage)
    worker.start()
    worker.join()
    assert freed_on_gui_thread == []  # Python collected nothing on the worker
    qtbot.waitUntil(lambda: len(freed_on_gui_thread) == 20_000, timeout=5000)
    assert all(freed_on_gui_thread)


def test_stopping_hands_collection_back_to_python(qapp):
    collector = MainThreadCollector(qapp)
    assert not gc.isenabled()
    collector.stop()
    try:
        assert gc.isenabled()
    finally:
        gc.disable()  # the GUI tests' own collector is still running
