"""Chunked reads of a ring: the lock is held per chunk, overwrites and clears are caught."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from epics_collector.storage import RangeRead, ReadError, Ring, StaleReadError
from epics_collector.storage._query import Query, run


def _ring(n: int, capacity: int) -> Ring:
    ring = Ring(capacity)
    for i in range(n):
        ring.append(float(i), float(i) * 2, 0, 0)
    return ring


def test_logical_indices_follow_overwrites() -> None:
    ring = _ring(25, capacity=10)  # holds rows 15..24, wrapped
    assert (ring.first_index, ring.total) == (15, 25)
    assert ring.index_of(17.0) == 17 and ring.index_of(17.0, "right") == 18
    assert ring.index_of(-1.0) == 15 and ring.index_of(99.0) == 25
    np.testing.assert_array_equal(ring.copy(13, 19).time, [15, 16, 17, 18])  # 13, 14 gone
    np.testing.assert_array_equal(ring.copy(18, 30).value, [36, 38, 40, 42, 44, 46, 48])


def test_an_idle_ring_allocates_nothing_and_grows_with_its_rows() -> None:
    ring = Ring(1_000_000)
    assert ring.nbytes == 0
    ring.append(1.0, 1.0, 0, 0)
    assert 0 < ring.nbytes <= 16 * 26
    for i in range(2, 1001):
        ring.append(float(i), 1.0, 0, 0)
    assert ring.nbytes <= 2048 * 26  # doubling: at most twice what is held
    ring.clear()
    assert ring.nbytes == 0


def test_a_range_read_yields_chunks_of_the_range_only() -> None:
    ring = _ring(1000, capacity=1000)
    read = RangeRead(threading.Lock(), ring, 100.0, 349.0, chunk=64)
    parts = list(read)
    assert read.total == 250 and [len(p) for p in parts] == [64, 64, 64, 58]
    np.testing.assert_array_equal(np.concatenate([p.time for p in parts]), np.arange(100, 350))


def test_rows_overwritten_during_a_read_are_skipped_and_counted() -> None:
    ring = _ring(100, capacity=100)
    read = RangeRead(threading.Lock(), ring, 0.0, 99.0, chunk=10)
    chunks = iter(read)
    first = next(chunks)
    for i in range(100, 150):  # the ring moves on: rows 0..49 are overwritten
        ring.append(float(i), 0.0, 0, 0)
    rest = list(chunks)
    times = np.concatenate([first.time, *[p.time for p in rest]])
    np.testing.assert_array_equal(times, np.r_[0:10, 50:100])  # in order, none twice
    assert read.overwritten == 40


def test_a_clear_during_a_read_ends_it() -> None:
    ring = _ring(100, capacity=100)
    chunks = iter(RangeRead(threading.Lock(), ring, 0.0, 99.0, chunk=10))
    next(chunks)
    ring.clear()
    with pytest.raises(StaleReadError, match="cleared during the read"):
        next(chunks)


def test_a_read_past_its_deadline_ends_with_a_clear_error() -> None:
    ring = _ring(100, capacity=100)
    read = RangeRead(threading.Lock(), ring, 0.0, 99.0, chunk=10, deadline=time.monotonic() - 1)
    with pytest.raises(ReadError, match="took too long"):
        list(read)


def test_a_query_never_holds_the_lock_between_chunks() -> None:
    """While a query is between chunks, another thread takes the lock at once."""
    ring = _ring(50_000, capacity=50_000)
    lock = threading.Lock()
    read = RangeRead(lock, ring, 0.0, 1e9, chunk=1000)
    seen_free = 0

    def chunks():
        nonlocal seen_free
        for part in read:
            if lock.acquire(blocking=False):
                seen_free += 1
                lock.release()
            yield part

    got = run(chunks(), Query(0.0, 50_000.0, 10, "count"), "number")
    assert seen_free == 50 and int(got["value"].sum()) == 50_000
