"""Read-ahead and parallel batches: order kept, errors handed on, work stopped when the consumer stops."""

from __future__ import annotations

import threading

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
    for thread in [t for t in threading.enumerate() if t.name == "emviewer-prefetch"]:
        thread.join(timeout=10)
        assert not thread.is_alive(), "the producer kept running after the consumer closed"
    assert len(produced) < 10


def test_reading_overlaps_consuming():
    """The next item is read while the consumer still holds the current one."""
    reading = [threading.Event() for _ in range(4)]

    def reads():
        for i in range(4):
            reading[i].set()
            yield i

    for i in prefetch(reads(), depth=2):
        if i + 1 < len(reading):
            assert reading[i + 1].wait(10), f"item {i + 1} was not read while item {i} was in use"


def test_parallel_map_keeps_order_and_runs_on_several_threads():
    running, most = set(), [0]
    lock = threading.Lock()
    first_three = threading.Barrier(3, timeout=10)  # broken unless three items are made at once

    def make(i):
        with lock:
            running.add(i)
            most[0] = max(most[0], len(running))
        if i < 3:
            first_three.wait()
        with lock:
            running.discard(i)
        return i * i

    assert list(parallel_map(make, 20, workers=3)) == [i * i for i in range(20)]
    assert most[0] == 3  # never more than asked


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
    assert len(made) < 10 and not any(
        t.name.startswith("emviewer-batches") and t.is_alive() for t in threading.enumerate()
    )
