"""Read-ahead and parallel batches: order kept, errors handed on, work stopped when the consumer stops."""

from __future__ import annotations

import threading
import time

import pytest

from emviewer.core.pipeline import parallel_map, prefetch


def test_items_arrive_in_order():
    assert list(prefetch(range(50), depth=3)) == list(range(50))


def test_producer_error_reaches_the_consumer():
    def broken():
        yield 1
        raise OSError("slice 2 unreadable")

    with pytest.raises(OSError, match="slice 2"):
        list(prefetch(broken()))


def test_closing_early_stops_the_producer():
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    items = prefetch(endless(), depth=2)
    assert next(items) == 0
    items.close()
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 10
    assert not any(t.name == "emviewer-prefetch" and t.is_alive() for t in threading.enumerate())


def test_reading_overlaps_consuming():
    def slow_reads():
        for i in range(4):
            time.sleep(0.2)
            yield i

    start = time.perf_counter()
    for _ in prefetch(slow_reads(), depth=2):
        time.sleep(0.2)  # "model" time
    # Serial would take 1.6 s; overlapped about 1.0 s.
    assert time.perf_counter() - start < 1.4


def test_parallel_map_keeps_order_and_runs_on_several_threads():
    running, most = set(), [0]
    lock = threading.Lock()

    def make(i):
        with lock:
            running.add(i)
            most[0] = max(most[0], len(running))
        time.sleep(0.05)  # long enough for the other workers to start theirs
        with lock:
            running.discard(i)
        return i * i

    assert list(parallel_map(make, 20, workers=3)) == [i * i for i in range(20)]
    assert most[0] == 3  # never more than asked, and all of them at work


def test_parallel_map_hands_errors_on_and_stops_when_closed():
    def broken(i):
        if i == 2:
            raise OSError("crop 2 unreadable")
        return i

    with pytest.raises(OSError, match="crop 2"):
        list(parallel_map(broken, 10, workers=2))

    made = []
    items = parallel_map(lambda i: made.append(i) or i, 10_000, workers=2)
    assert next(items) == 0
    items.close()
    assert len(made) < 10 and not any(t.name.startswith("emviewer-batches") and t.is_alive() for t in threading.enumerate())
