"""Paged reads go by position: every row once, equal stamps and odd floats included."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from epics_collector.storage import (
    OverwrittenError,
    Query,
    RangeRead,
    Ring,
    StaleReadError,
    page,
    run_query,
)


def _ring(times: np.ndarray, capacity: int | None = None) -> Ring:
    ring = Ring(capacity or len(times))
    for k, t in enumerate(times):
        ring.append(float(t), float(k), 0, 0)
    return ring


def _read_all(ring: Ring, start: float, end: float, rows: int) -> tuple[np.ndarray, int]:
    """Every page of [start, end], each after the cursor of the one before."""
    lock, cursor, values, pages = threading.Lock(), None, [], 0
    while True:
        got = page(RangeRead.page(lock, ring, start, end, rows, cursor), "number")
        pages += 1
        values.append(got["value"])
        assert len(got["index"]) == len(got["value"]) == len(got["ns"])
        if len(got["value"]) < rows:
            return np.concatenate(values), pages
        cursor = (int(got["epoch"][0]), int(got["index"][-1]))


def test_irregular_float_stamps_come_back_whole_across_many_pages() -> None:
    rng = np.random.default_rng(7)
    times = 1.7e9 + np.cumsum(rng.uniform(0.05, 0.15, 20_000))  # 10 Hz-like, no round floats
    ring = _ring(times)
    values, pages = _read_all(ring, float(times[0]), float(times[-1]), 997)
    assert pages >= 3
    np.testing.assert_array_equal(values, np.arange(len(times)))


def test_a_block_of_equal_stamps_across_a_page_boundary_comes_back_whole() -> None:
    times = np.concatenate([np.arange(95.0), np.full(30, 95.0), 96.0 + np.arange(75.0)])
    ring = _ring(times)
    values, pages = _read_all(ring, 0.0, 1000.0, 100)  # the twins straddle row 100
    assert pages == 3
    np.testing.assert_array_equal(values, np.arange(len(times)))


def test_a_first_page_begins_with_the_value_at_start_or_every_row_at_it() -> None:
    ring = _ring(np.array([1.0, 2.0, 2.0, 3.0, 5.0]))
    lock = threading.Lock()
    between = page(RangeRead.page(lock, ring, 4.0, 10.0, 10), "number")
    assert list(between["value"]) == [3.0, 4.0]  # the value at 4 (from 3), then 5
    at = page(RangeRead.page(lock, ring, 2.0, 10.0, 10), "number")
    assert list(at["value"]) == [1.0, 2.0, 3.0, 4.0]  # both rows at 2 itself
    before = page(RangeRead.page(lock, ring, 0.0, 0.5, 10), "number")
    assert len(before["value"]) == 0


def test_a_cursor_that_cannot_go_on_raises_instead_of_answering_short() -> None:
    ring = _ring(np.arange(100.0), capacity=100)
    lock = threading.Lock()
    first = page(RangeRead.page(lock, ring, 0.0, 99.0, 10), "number")
    cursor = (int(first["epoch"][0]), int(first["index"][-1]))
    for t in range(100, 120):  # the ring moves on past the cursor
        ring.append(float(t), 0.0, 0, 0)
    with pytest.raises(OverwrittenError, match="10 rows after the previous page"):
        list(RangeRead.page(lock, ring, 0.0, 99.0, 10, cursor))
    ring.clear()
    ring.append(1.0, 0.0, 0, 0)
    with pytest.raises(StaleReadError, match="read again from the start"):
        RangeRead.page(lock, ring, 0.0, 99.0, 10, cursor)
    assert Ring(10).epoch != Ring(10).epoch  # a restarted collector's ring: a new epoch


def test_a_count_of_one_bin_comes_from_the_index_without_copying_rows() -> None:
    ring = _ring(np.arange(1000.0))
    read = RangeRead(threading.Lock(), ring, 100.0, 599.0)

    class Untouched:
        def __iter__(self) -> object:
            raise AssertionError("the rows were copied to be counted")

    counted = run_query(Untouched(), Query(100.0, 599.0, 1, "count"), "number", total=read.total)  # type: ignore[arg-type]
    assert list(counted["value"]) == [500]
