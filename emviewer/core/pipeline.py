"""Overlap producing work items (reading, pre-processing) with consuming them (the model)."""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Iterate ``items`` on a background thread, keeping up to ``depth`` ready ahead.

    Errors raised while producing are re-raised in the consumer. Closing the returned
    generator early (``break``, an exception, cancel) stops the producer promptly.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                return ready.put(item, timeout=0.1)
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="emviewer-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def default_workers() -> int:
    """Threads for making training batches: half the cores (the model needs the rest on a
    CPU; on a GPU machine they keep it fed), 1 to 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def parallel_map(make: Callable[[int], T], count: int, workers: int | None = None) -> Generator[T, None, None]:
    """``make(0), make(1), ... make(count - 1)`` on ``workers`` threads, yielded in order.

    At most ``workers + 1`` results are made ahead. NumPy releases the GIL in its array work,
    so cutting and augmenting crops on several threads scales with cores. ``make`` must not
    depend on call order (seed each item by its index). Errors reach the consumer; closing
    the returned generator early cancels what has not started.
    """
    workers = workers or default_workers()
    with ThreadPoolExecutor(workers, thread_name_prefix="emviewer-batches") as pool:
        pending: deque = deque()
        submitted = 0
        try:
            while submitted < count or pending:
                while submitted < count and len(pending) <= workers:
                    pending.append(pool.submit(make, submitted))
                    submitted += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
