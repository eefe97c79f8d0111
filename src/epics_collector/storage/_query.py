"""Time-range reads of a history: raw rows, or equal-time bins reduced by an operator.

A query never copies the whole history: it takes the rows in chunks (see
:class:`~epics_collector.storage._reads.RangeRead`, which copies each chunk under the
recorder's lock and releases it in between) and keeps one accumulator per bin, so it
allocates O(points + CHUNK) beyond the ring. Bins split [start, end] into ``points`` equal time
intervals; empty bins are left out. Values that are NaN (gap rows) are skipped by every
operator but ``raw``, ``first``, ``last`` and ``count`` (which count rows).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from epics_collector.storage._reads import CHUNK, RangeRead, ReadError
from epics_collector.storage._ring import Columns, Ring
from epics_collector.storage._summaries import ROWS_PER_BIN, summaries_of

OPERATORS = ("raw", "mean", "min", "max", "first", "last", "count", "minmax")
#: Raw rows a page at a time (for readers that page through a long range): the newest
#: row at or before start, then the rows after it up to end, at most ``points`` of them.
PAGE = "page"
NUMERIC_ONLY = frozenset({"mean", "min", "max", "minmax"})
ROWS_ONLY = frozenset({"raw", "count", PAGE})  # what waveforms and images take (no per-row number)
MAX_POINTS = 100_000  # rows a query returns at most (raw rows or bins)
#: operators a number ring's block summaries answer (see :mod:`._summaries`)
SUMMARISED = frozenset({"mean", "min", "max", "minmax", "count"})


class QueryError(ReadError):
    """A query's arguments do not make sense (the text says which and why)."""


@dataclass(frozen=True)
class Query:
    """What to read: [start, end] in POSIX seconds, ``points`` rows at most, an operator."""

    start: float
    end: float
    points: int
    operator: str
    #: ``page`` only: (epoch, index) of the last row of the previous page (see
    #: :meth:`RangeRead.page`): the page goes on from the row after it.
    cursor: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS and self.operator != PAGE:
            raise QueryError(
                f"unknown operator {self.operator!r}; one of {', '.join((*OPERATORS, PAGE))}"
            )
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise QueryError(f"start and end must be finite numbers (got {self.start}, {self.end})")
        if self.start > self.end:
            raise QueryError(f"start {self.start} is after end {self.end}")
        if not 1 <= self.points <= MAX_POINTS:
            raise QueryError(f"points must be 1..{MAX_POINTS} (got {self.points})")
        if self.cursor is not None and self.operator != PAGE:
            raise QueryError(f"after and epoch go with operator=page, not {self.operator}")


def query_ring(
    lock: threading.Lock,
    ring: Ring,
    kind: str,
    query: Query,
    deadline: float | None = None,
    arrivals: Callable[[], int] | None = None,
) -> dict[str, np.ndarray]:
    """A query of one ring (a live channel, or a recording read back), chunk by chunk.

    A ``page`` starts at the newest row at or before ``start`` (the value then), or after
    its cursor, and goes by position (see :meth:`RangeRead.page`); the other operators
    read [start, end], a one-bin ``count`` from the index alone.
    """
    if query.operator == PAGE:
        read = RangeRead.page(
            lock,
            ring,
            query.start,
            query.end,
            query.points,
            query.cursor,
            deadline=deadline,
            arrivals=arrivals,
        )
        return page(read, kind)
    rows = RangeRead(lock, ring, query.start, query.end, deadline=deadline, arrivals=arrivals)
    if (
        kind == "number"
        and query.operator in SUMMARISED
        and rows.total >= ROWS_PER_BIN * query.points
        and not (query.operator == "count" and query.points == 1)  # (the index says)
    ):
        return _summarised(lock, ring, query, deadline)
    return run(rows, query, kind, total=rows.total)


def _summarised(
    lock: threading.Lock, ring: Ring, query: Query, deadline: float | None
) -> dict[str, np.ndarray]:
    """A binned query of many rows from the ring's block summaries and its edge rows."""
    summaries = summaries_of(ring)
    bins = Bins(query)
    with summaries.lock:
        summaries.update(lock, ring, deadline)
        bins.reference = summaries.reference if summaries.reference is not None else 0.0
        summaries.binned(lock, ring, query, bins)
    return bins.result(query.operator)


def page(read: RangeRead, kind: str) -> dict[str, np.ndarray]:
    """The rows of a :meth:`RangeRead.page` read, with their cursor.

    Columns as for ``raw`` (or an array page), plus ``ns`` (exact stamps), ``index``
    (each row's logical index) and ``epoch`` (one entry: the ring's): a next page asks
    ``after`` the last index, with that epoch.
    """
    parts = list(read)
    columns = page_columns(parts, kind)
    rows = sum(len(p) for p in parts)
    columns["index"] = np.arange(read.first, read.first + rows, dtype=np.int64)
    columns["epoch"] = np.array([read.epoch], np.int64)
    return columns


def page_columns(parts: list[Columns], kind: str) -> dict[str, np.ndarray]:
    """A page's rows as columns: as for ``raw`` (or an array page), plus ``ns``."""
    if kind in ("waveform", "image"):
        return _array_page(parts)
    columns = _raw(iter(parts), Query(0.0, 0.0, MAX_POINTS, "raw"), with_value=True)
    columns["ns"] = np.concatenate([p.stamps() for p in parts]) if parts else np.zeros(0, np.int64)
    return columns


def run(
    parts: Iterable[Columns], query: Query, kind: str, total: int | None = None
) -> dict[str, np.ndarray]:
    """The rows or bins of ``parts`` (oldest first, times ascending) for ``query``.

    ``parts`` are read one at a time (a :class:`RangeRead` or a ring's segments); rows
    outside [start, end] are left out. ``total``, when known, is how many rows the range
    holds, so a ``raw`` query that cannot fit is refused before anything is read.
    ``kind`` is the channel's kind: number, string, waveform or image. Columns: ``raw``
    gives time, value, severity, status (time, severity, status for arrays); ``minmax``
    gives time, value (the mean), min, max, count per bin; the other operators time,
    value. A bin's time is its middle, except for ``first`` and ``last`` (the row's time).
    """
    if kind in ("waveform", "image") and query.operator not in ROWS_ONLY:
        raise QueryError(
            f"{query.operator}: a {kind} channel takes raw (the rows' times; the data is in "
            "its Value/Frame PVs) or count"
        )
    if kind == "string" and query.operator in NUMERIC_ONLY:
        raise QueryError(
            f"{query.operator} needs numbers; a string channel takes raw, first, last, count"
        )
    if query.operator == "raw" and total is not None and total > query.points:
        raise _too_many(total, query)
    if query.operator == "count" and query.points == 1 and total is not None:
        # one bin: the count is the index's, nothing needs to be copied out
        middle = np.array([query.start + (query.end - query.start) / 2])
        if not total:
            return {"time": middle[:0], "value": np.zeros(0, np.int64)}
        return {"time": middle, "value": np.array([total], np.int64)}
    chunks = _chunks(parts, query.start, query.end)
    if query.operator == "raw":
        return _raw(chunks, query, with_value=kind in ("number", "string"))
    if query.operator == PAGE:
        return page_columns(list(_first(chunks, query.points)), kind)
    return Bins(query).reduce(chunks)


def _chunks(parts: Iterable[Columns], start: float, end: float) -> Iterator[Columns]:
    """The rows of ``parts`` in [start, end], at most ``CHUNK`` at a time."""
    for part in parts:
        rows = _in_range(part, start, end)
        for lo in range(0, len(rows), CHUNK):
            yield rows.take(slice(lo, lo + CHUNK))


def _array_page(parts: list[Columns]) -> dict[str, np.ndarray]:
    """A page of array rows, one column longer than the others.

    Columns: time, severity, status and ``elements`` per row, and ``values``: every
    row's elements one after the other.
    """
    rows = [np.ravel(np.asarray(v)) for part in parts for v in part.value]
    empty = np.zeros(0)
    return {
        "time": np.concatenate([p.time for p in parts]) if parts else empty,
        "severity": np.concatenate([p.severity for p in parts]) if parts else empty.astype(np.int8),
        "status": np.concatenate([p.status for p in parts]) if parts else empty.astype(np.int8),
        "ns": np.concatenate([p.stamps() for p in parts]) if parts else empty.astype(np.int64),
        "elements": np.array([len(r) for r in rows], np.int32),
        "values": np.concatenate(rows) if rows else empty,
    }


def _first(chunks: Iterator[Columns], rows: int) -> Iterator[Columns]:
    """The first ``rows`` rows of ``chunks`` (the read stops there)."""
    left = rows
    for part in chunks:
        if left <= 0:
            return
        yield part if len(part) <= left else _head(part, left)
        left -= len(part)


def _head(rows: Columns, n: int) -> Columns:
    return rows.take(slice(0, n))


def _too_many(total: int | str, query: Query) -> QueryError:
    return QueryError(
        f"{total} rows in [{query.start}, {query.end}] exceed points={query.points}: "
        f"narrow the range, raise points (up to {MAX_POINTS}) or use an operator"
    )


def _in_range(rows: Columns, start: float, end: float) -> Columns:
    lo = int(np.searchsorted(rows.time, start, "left"))
    hi = int(np.searchsorted(rows.time, end, "right"))
    return rows.take(slice(lo, hi))


def _raw(chunks: Iterator[Columns], query: Query, *, with_value: bool) -> dict[str, np.ndarray]:
    parts: list[Columns] = []
    held = 0
    for part in chunks:
        held += len(part)
        if held > query.points:
            raise _too_many(f"more than {query.points}", query)
        parts.append(part)
    columns = {"time": np.concatenate([p.time for p in parts]) if parts else np.zeros(0)}
    if with_value:
        columns["value"] = np.concatenate([p.value for p in parts]) if parts else np.zeros(0)
    columns["severity"] = (
        np.concatenate([p.severity for p in parts]) if parts else np.zeros(0, np.int8)
    )
    columns["status"] = np.concatenate([p.status for p in parts]) if parts else np.zeros(0, np.int8)
    return columns


class Bins:
    """One accumulator per bin, filled chunk by chunk (rows arrive in time order)."""

    def __init__(self, query: Query) -> None:
        self.query = query
        n = query.points
        self.width = (query.end - query.start) / n
        self.rows = np.zeros(n, np.int64)  # rows in the bin (NaN values included)
        self.count = np.zeros(n, np.int64)  # non-NaN values
        self.total = np.zeros(n)
        self.shifted = np.zeros(n)  # sums of value - reference (std without cancellation)
        self.squares = np.zeros(n)
        self.reference: float | None = None
        self.severity = np.zeros(n, np.int8)  # the highest of the bin
        self.low = np.full(n, np.inf)
        self.high = np.full(n, -np.inf)
        self.first_time = np.full(n, np.nan)
        self.last_time = np.full(n, np.nan)
        self.first_value: np.ndarray | None = None
        self.last_value: np.ndarray | None = None
        self.edges = query.start + self.width * np.arange(1, n)  # inner edges

    def reduce(self, chunks: Iterator[Columns]) -> dict[str, np.ndarray]:
        operator = self.query.operator
        numeric = operator in NUMERIC_ONLY
        for part in chunks:
            if len(part):
                self._add(part.time, part.value, numeric, operator, part.severity)
        return self.result(operator)

    def _add(
        self,
        times: np.ndarray,
        values: np.ndarray,
        numeric: bool,
        operator: str,
        severity: np.ndarray,
    ) -> None:
        # the bin of each chunk row is nondecreasing: find where each bin starts
        first_bin = self._bin(times[0])
        last_bin = self._bin(times[-1])
        bins = np.arange(first_bin, last_bin + 1)
        starts = np.searchsorted(times, self.edges[first_bin:last_bin], "left")
        starts = np.concatenate(([0], starts))
        sizes = np.diff(np.concatenate((starts, [len(times)])))
        keep = sizes > 0
        bins, starts, sizes = bins[keep], starts[keep], sizes[keep]
        self.rows[bins] += sizes
        ends = starts + sizes - 1
        new = np.isnan(self.first_time[bins])
        self.first_time[bins[new]] = times[starts[new]]
        self.last_time[bins] = times[ends]
        if operator in ("first", "last"):
            if self.first_value is None:
                self.first_value = np.empty(self.query.points, values.dtype)
                self.last_value = np.empty(self.query.points, values.dtype)
            assert self.last_value is not None
            self.first_value[bins[new]] = values[starts[new]]
            self.last_value[bins] = values[ends]
        if not numeric:
            return
        values = np.asarray(values, np.float64)
        self.severity[bins] = np.maximum(self.severity[bins], np.maximum.reduceat(severity, starts))
        self.low[bins] = np.fmin(self.low[bins], np.fmin.reduceat(values, starts))
        self.high[bins] = np.fmax(self.high[bins], np.fmax.reduceat(values, starts))
        if self.reference is None:
            finite = values[np.isfinite(values)]
            self.reference = float(finite[0]) if len(finite) else None
        shifted = values - (self.reference or 0.0)
        sums = np.add.reduceat(values, starts)
        moved = np.add.reduceat(shifted, starts)
        squares = np.add.reduceat(shifted * shifted, starts)
        counts = sizes.copy()
        gaps = np.isnan(sums)
        if gaps.any():  # a NaN (gap row) in a bin: sum and count that bin without it
            for i in np.flatnonzero(gaps):
                lo, hi = starts[i], starts[i] + sizes[i]
                valid = ~np.isnan(values[lo:hi])
                sums[i], counts[i] = values[lo:hi][valid].sum(), int(valid.sum())
                part = shifted[lo:hi][valid]
                moved[i], squares[i] = part.sum(), (part * part).sum()
        self.total[bins] += sums
        self.shifted[bins] += moved
        self.squares[bins] += squares
        self.count[bins] += counts

    def add_rows(
        self, owner: np.ndarray, offsets: np.ndarray, values: np.ndarray, severity: np.ndarray
    ) -> None:
        """Rows in runs: run ``j`` starts at ``offsets[j]`` and belongs to bin ``owner[j]``."""
        if self.reference is None:
            finite = values[~np.isnan(values)]
            self.reference = float(finite[0]) if len(finite) else 0.0
        valid = ~np.isnan(values)
        shifted = np.where(valid, values - self.reference, 0.0)
        ends = np.append(offsets[1:], len(values))
        self.add_summary(
            owner,
            rows=ends - offsets,
            count=np.add.reduceat(valid.astype(np.int64), offsets),
            total=np.add.reduceat(np.where(valid, values, 0.0), offsets),
            shifted=np.add.reduceat(shifted, offsets),
            squares=np.add.reduceat(shifted * shifted, offsets),
            low=np.fmin.reduceat(values, offsets),
            high=np.fmax.reduceat(values, offsets),
            severity=np.maximum.reduceat(severity, offsets),
        )

    def add_summary(
        self,
        owner: np.ndarray,
        *,
        rows: np.ndarray,
        count: np.ndarray,
        total: np.ndarray,
        shifted: np.ndarray,
        squares: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        severity: np.ndarray,
    ) -> None:
        """Statistics of parts of bins (``owner[j]``: the bin of part ``j``; repeats add)."""
        np.add.at(self.rows, owner, rows)
        np.add.at(self.count, owner, count)
        np.add.at(self.total, owner, total)
        np.add.at(self.shifted, owner, shifted)
        np.add.at(self.squares, owner, squares)
        np.fmin.at(self.low, owner, low)
        np.fmax.at(self.high, owner, high)
        np.maximum.at(self.severity, owner, severity.astype(np.int8))

    def _bin(self, t: float) -> int:
        return int(np.searchsorted(self.edges, t, "right"))

    def result(self, operator: str) -> dict[str, np.ndarray]:
        used = np.flatnonzero(self.rows)
        middle = self.query.start + self.width * (used + 0.5)
        if self.width == 0:
            middle = np.full(len(used), self.query.start)
        if operator == "count":
            return {"time": middle, "value": self.rows[used]}
        if operator == "first":
            assert self.first_value is not None
            return {"time": self.first_time[used], "value": self.first_value[used]}
        if operator == "last":
            assert self.last_value is not None
            return {"time": self.last_time[used], "value": self.last_value[used]}
        count, moved = self.count[used], self.shifted[used]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, self.total[used] / count, np.nan)
            spread = (self.squares[used] - moved * moved / count) / (count - 1)
        single = np.where(count == 1, 0.0, np.nan)  # one value: no spread; none: unknown
        std = np.where(count > 1, np.sqrt(np.maximum(spread, 0.0)), single)
        # a bin without a value (gap rows only) has none; an infinite value stays infinite
        low = np.where(count > 0, self.low[used], np.nan)
        high = np.where(count > 0, self.high[used], np.nan)
        if operator == "mean":
            return {"time": middle, "value": mean}
        if operator == "min":
            return {"time": middle, "value": low}
        if operator == "max":
            return {"time": middle, "value": high}
        return {
            "time": middle,
            "value": mean,
            "min": low,
            "max": high,
            "count": count,
            "std": std,
            "severity": self.severity[used],
        }
