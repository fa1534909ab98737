"""Read-ahead: order kept, errors handed on, producer stopped when the consumer stops."""

from __future__ import annotations

import threading
import time

import pytest

from emviewer.core.pipeline import prefetch


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
