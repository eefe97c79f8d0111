"""History queries against plain numpy on the same rows: every operator, bins, edges, caps."""

from __future__ import annotations

import numpy as np
import pytest

from epics_collector.storage import Columns, Ring
from epics_collector.storage._query import CHUNK, MAX_POINTS, Query, QueryError, run


def _rows(n: int, seed: int = 1, gaps: int = 0) -> Columns:
    rng = np.random.default_rng(seed)
    time = np.cumsum(rng.uniform(0.001, 0.02, n)) + 1000.0
    value = rng.normal(0, 1, n)
    value[rng.choice(n, gaps, replace=False)] = np.nan
    severity = rng.integers(0, 3, n).astype(np.int8)
    return Columns(time, value, severity, np.zeros(n, np.int8))


def _expected(rows: Columns, start: float, end: float, points: int, operator: str):
    """The same reduction written the obvious way, bin by bin."""
    width = (end - start) / points
    out: dict[str, list[float]] = {"time": [], "value": [], "min": [], "max": [], "count": []}
    for b in range(points):
        lo, hi = start + b * width, start + (b + 1) * width
        last = b == points - 1
        keep = (rows.time >= lo) & ((rows.time <= hi) if last else (rows.time < hi))
        if not keep.any():
            continue
        values, times = rows.value[keep], rows.time[keep]
        valid = values[~np.isnan(values)]
        middle = start + width * (b + 0.5)
        pick = {
            "mean": valid.mean() if len(valid) else np.nan,
            "min": valid.min() if len(valid) else np.nan,
            "max": valid.max() if len(valid) else np.nan,
            "first": values[0],
            "last": values[-1],
            "count": float(len(values)),
        }
        out["time"].append(
            times[0] if operator == "first" else times[-1] if operator == "last" else middle
        )
        out["value"].append(pick["mean" if operator == "minmax" else operator])
        out["min"].append(pick["min"])
        out["max"].append(pick["max"])
        out["count"].append(float(len(valid)))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("operator", ["mean", "min", "max", "first", "last", "count", "minmax"])
@pytest.mark.parametrize("points", [1, 7, 1000])
def test_each_operator_matches_numpy(operator: str, points: int) -> None:
    rows = _rows(3 * CHUNK + 123, gaps=50)  # several chunks, gap rows (NaN) inside
    start, end = float(rows.time[100]), float(rows.time[-200])
    got = run([rows], Query(start, end, points, operator), "number")
    want = _expected(rows, start, end, points, operator)
    np.testing.assert_array_equal(got["time"], want["time"]) if operator in (
        "first",
        "last",
    ) else np.testing.assert_allclose(got["time"], want["time"], rtol=1e-15)
    if operator == "mean":
        np.testing.assert_allclose(got["value"], want["value"], rtol=1e-12)
    elif operator == "minmax":
        np.testing.assert_allclose(got["value"], want["value"], rtol=1e-12)
        np.testing.assert_array_equal(got["min"], want["min"])
        np.testing.assert_array_equal(got["max"], want["max"])
        np.testing.assert_array_equal(got["count"], want["count"])
    else:
        np.testing.assert_array_equal(got["value"], want["value"])


def test_two_ring_segments_give_what_one_array_gives() -> None:
    rows = _rows(5000)
    ring = Ring(3000)
    for row in zip(rows.time, rows.value, rows.severity, rows.status, strict=True):
        ring.append(*row)  # wraps: the ring holds the newest 3000 in two segments
    segments = ring.segments()
    assert len(segments) == 2
    whole = ring.columns()
    query = Query(float(whole.time[0]), float(whole.time[-1]), 37, "minmax")
    got, want = run(segments, query, "number"), run([whole], query, "number")
    np.testing.assert_allclose(got.pop("value"), want.pop("value"), rtol=1e-12)  # the mean
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_empty_bins_are_left_out_and_edges_belong_to_one_bin() -> None:
    time = np.array([0.0, 1.0, 1.0, 5.0, 10.0])
    rows = Columns(time, np.arange(5.0), np.zeros(5, np.int8), np.zeros(5, np.int8))
    got = run([rows], Query(0.0, 10.0, 10, "count"), "number")
    # bins [0,1) [1,2) ... [9,10]: a row on an inner edge is in the later bin, end is in
    np.testing.assert_array_equal(got["time"], [0.5, 1.5, 5.5, 9.5])
    np.testing.assert_array_equal(got["value"], [1, 2, 1, 1])
    got = run([rows], Query(1.0, 1.0, 3, "count"), "number")  # a zero-width range
    np.testing.assert_array_equal(got["value"], [2])


def test_raw_rows_in_range_and_its_cap() -> None:
    rows = _rows(1000)
    start, end = float(rows.time[10]), float(rows.time[19])
    got = run([rows], Query(start, end, 10, "raw"), "number")
    np.testing.assert_array_equal(got["value"], rows.value[10:20])
    np.testing.assert_array_equal(got["severity"], rows.severity[10:20])
    with pytest.raises(QueryError, match="more than 9 rows in .* exceed points=9"):
        run([rows], Query(start, end, 9, "raw"), "number")  # counted while read
    with pytest.raises(QueryError, match="^10 rows in .* exceed points=9"):
        run([rows], Query(start, end, 9, "raw"), "number", total=10)  # known: nothing read
    assert list(run([rows], Query(0.0, 1.0, 10, "raw"), "number")["time"]) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((2.0, 1.0, 10, "mean"), "start 2.0 is after end 1.0"),
        ((0.0, 1.0, 0, "mean"), f"points must be 1..{MAX_POINTS}"),
        ((0.0, 1.0, MAX_POINTS + 1, "mean"), "points must be"),
        ((0.0, float("nan"), 10, "mean"), "finite"),
        ((float("-inf"), 1.0, 10, "mean"), "finite"),
        ((0.0, 1.0, 10, "median"), "unknown operator 'median'"),
    ],
)
def test_bad_arguments_say_what_is_wrong(args: tuple, error: str) -> None:
    with pytest.raises(QueryError, match=error):
        Query(*args)


def test_kinds_take_the_operators_that_make_sense() -> None:
    rows = Columns(
        np.array([1.0, 2.0]),
        np.array(["a", "b"], object),
        np.zeros(2, np.int8),
        np.zeros(2, np.int8),
    )
    assert list(run([rows], Query(0, 3, 1, "last"), "string")["value"]) == ["b"]
    with pytest.raises(QueryError, match="string channel takes raw, first, last, count"):
        run([rows], Query(0, 3, 1, "mean"), "string")
    with pytest.raises(QueryError, match="a waveform channel takes raw"):
        run([rows], Query(0, 3, 1, "minmax"), "waveform")
    assert "value" not in run([rows], Query(0, 3, 5, "raw"), "image")


def test_minmax_bins_carry_std_and_the_highest_severity() -> None:
    n = 3 * CHUNK + 17  # bins that span chunks
    t = np.arange(n, dtype=float)
    values = 1e6 + np.sin(t)  # a large offset: the std must not cancel
    values[5] = np.nan  # a gap row
    severity = (np.arange(n) % 7 == 0).astype(np.int8) * 2
    rows = Columns(t, values, severity, np.zeros(n, np.int8))
    got = run([rows], Query(0.0, float(n), 10, "minmax"), "number")
    edges = np.linspace(0.0, float(n), 11)
    for k in range(10):
        inside = (t >= edges[k]) & (t < edges[k + 1])
        chosen = values[inside][np.isfinite(values[inside])]
        assert got["std"][k] == pytest.approx(np.std(chosen, ddof=1), rel=1e-6)
        assert got["severity"][k] == severity[inside].max()
