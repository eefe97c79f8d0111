"""Binned queries of many rows from block summaries equal the same bins of every row."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from epics_collector.storage import Columns, Query, Ring, _summaries, query_ring, run_query

OPERATORS = ("mean", "min", "max", "minmax", "count")


def _rows(n: int, seed: int, t0: float = 1.7e9) -> Columns:
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.exponential(0.01, n))  # irregular, ascending
    v = rng.normal(5.0, 3.0, n)
    v[rng.random(n) < 0.02] = np.nan  # gap rows
    v[rng.random(n) < 0.001] = np.inf
    severity = rng.integers(0, 3, n).astype(np.int8) * (rng.random(n) < 0.01)
    return Columns(t, v, severity.astype(np.int8), np.zeros(n, np.int8))


def _direct(ring: Ring, query: Query) -> dict[str, np.ndarray]:
    """The same query over every row (no summaries)."""
    return run_query(ring.segments(), query, "number")


def _same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if name in ("time", "count", "min", "max", "severity") or want[name].dtype.kind in "iu":
            assert np.array_equal(got[name], want[name], equal_nan=True), name
        else:
            assert np.allclose(got[name], want[name], rtol=1e-9, atol=1e-9, equal_nan=True), name


@pytest.mark.parametrize("operator", OPERATORS)
def test_summarised_bins_equal_the_bins_of_every_row(operator: str) -> None:
    rows = _rows(300_000, 1)
    ring = Ring(400_000)
    ring.extend(rows)
    lock = threading.Lock()
    span = rows.time[-1] - rows.time[0]
    for start, end, points in [
        (rows.time[0], rows.time[-1], 100),  # the whole range
        (rows.time[0] - 50, rows.time[-1] + 50, 7),  # beyond both ends
        (rows.time[1000] + 0.003, rows.time[250_000], 300),  # inside, off the rows
        (rows.time[0] + span / 3, rows.time[0] + span / 2, 1),
        (rows.time[5], rows.time[200_000], 391),
    ]:
        query = Query(float(start), float(end), points, operator)
        assert ring.__len__() >= _summaries.ROWS_PER_BIN * points or points > 300
        _same(query_ring(lock, ring, "number", query), _direct(ring, query))
    assert _summaries.summaries_of(ring).built == 300_000 // _summaries.BLOCK  # they were used


def test_summaries_follow_a_ring_that_overwrites_and_a_clear() -> None:
    ring, lock = Ring(100_000), threading.Lock()
    rows = _rows(260_000, 2)
    query_of = lambda: Query(float(rows.time[0]), float(rows.time[-1]), 50, "minmax")  # noqa: E731
    for lo in range(0, 260_000, 37_000):  # appended in steps, queried in between
        part = rows.take(slice(lo, lo + 37_000))
        for k in range(len(part)):
            ring.append(float(part.time[k]), part.value[k], int(part.severity[k]), 0)
        if len(ring) >= _summaries.ROWS_PER_BIN * 50:
            _same(query_ring(lock, ring, "number", query_of()), _direct(ring, query_of()))
    summaries = _summaries.summaries_of(ring)
    assert summaries.first * _summaries.BLOCK >= ring.first_index  # overwritten: dropped
    ring.clear()
    fresh = _rows(120_000, 3, t0=1.8e9)
    ring.extend(fresh)
    query = Query(float(fresh.time[0]), float(fresh.time[-1]), 20, "mean")
    _same(query_ring(lock, ring, "number", query), _direct(ring, query))
    assert summaries.epoch == ring.epoch


def test_summarised_minmax_equals_numpy_over_every_row() -> None:
    """An oracle apart from our own code: numpy bins of every row, by the bins' edges."""
    rows = _rows(500_000, 4)
    ring, lock = Ring(500_000), threading.Lock()
    ring.extend(rows)
    start, end, points = float(rows.time[123]), float(rows.time[-77]), 250
    got = query_ring(lock, ring, "number", Query(start, end, points, "minmax"))
    assert _summaries.summaries_of(ring).built > 0  # (the summaries answered)
    inside = (rows.time >= start) & (rows.time <= end)
    t, v, sev = rows.time[inside], rows.value[inside], rows.severity[inside]
    edges = start + (end - start) / points * np.arange(1, points)
    which = np.searchsorted(edges, t, "right")  # a row on an edge is in the later bin
    used = np.unique(which)
    assert np.array_equal(got["time"], start + (end - start) / points * (used + 0.5))
    for k, b in enumerate(used):
        values = v[which == b]
        finite = values[~np.isnan(values)]
        assert got["count"][k] == len(finite)
        assert got["min"][k] == np.min(finite) and got["max"][k] == np.max(finite)
        assert got["value"][k] == pytest.approx(np.mean(finite), rel=1e-12)
        assert got["severity"][k] == sev[which == b].max()
        if np.all(np.isfinite(finite)):
            assert got["std"][k] == pytest.approx(np.std(finite, ddof=1), rel=1e-6)
