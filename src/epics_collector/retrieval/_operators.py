"""The Archiver Appliance's post-processing operators, ``op_N(pv)``, with numpy.

Binned like the appliance: a sample of POSIX second ``s`` is in bin ``s // N``; a bin's
result is stamped at the bin's middle (``bin * N + N / 2``) with the highest severity
of its samples. The newest sample before ``from`` (when none is exactly at ``from``)
forms a bin of its own just before the first one, so a plot starts with the value it
had then. Bins without samples repeat the previous bin's result (the "fill"
operators, ``mean`` and the statistics), are left out (``firstSample``,
``lastSample``), or count 0 (``count``). Non-finite values (the gap rows a collector
records when a source disconnects) are left out of the statistics and counted.

``optimized_N`` gives the raw samples when the range holds at most N of them, else
about N bins, each a WAVEFORM_DOUBLE of [mean, std, min, max, count], as Phoebus's
optimized reader expects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from epics_collector.retrieval._pb import PayloadType
from epics_collector.retrieval._samples import Samples

DEFAULT_BIN = 900  # seconds: the appliance's default summarising interval
MAX_BINS = 1_000_000  # bins one request may ask for


class OperatorError(ValueError):
    """A request's operator is unknown or its argument does not make sense."""


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if len(v) else np.nan


def _std(v: np.ndarray) -> float:
    return float(v.std(ddof=1)) if len(v) > 1 else (0.0 if len(v) else np.nan)


def _variance(v: np.ndarray) -> float:
    return float(v.var(ddof=1)) if len(v) > 1 else (0.0 if len(v) else np.nan)


def _jitter(v: np.ndarray) -> float:
    return _std(v) / _mean(v) if len(v) else np.nan


def _of(function: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    return lambda v: float(function(v)) if len(v) else np.nan


STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": _mean,
    "median": _of(np.median),
    "min": _of(np.min),
    "max": _of(np.max),
    "std": _std,
    "variance": _variance,
    "jitter": _jitter,
    "firstFill": lambda v: float(v[0]) if len(v) else np.nan,
    "lastFill": lambda v: float(v[-1]) if len(v) else np.nan,
}
#: Statistics a collector's ``minmax`` bins ([mean, std, min, max, count]) answer, so
#: that no raw row leaves the collector: computed from one bin's summary.
FROM_SUMMARY: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda s: s[0],
    "std": lambda s: s[1],
    "min": lambda s: s[2],
    "max": lambda s: s[3],
    "variance": lambda s: s[1] * s[1],
    "jitter": lambda s: s[1] / s[0] if s[4] and s[0] else np.nan,
}
SAMPLES = ("firstSample", "lastSample")
OPERATORS = (*STATISTICS, *SAMPLES, "count", "ncount", "nth", "optimized", "caplotbinning")
_CALL = re.compile(r"(?P<op>[A-Za-z]+)(?:_(?P<n>[-+]?\d+))?\((?P<pv>.+)\)")


@dataclass(frozen=True)
class Operator:
    """An operator and its argument ``n`` (bin seconds; every n-th; at most n bins)."""

    name: str
    n: int


def parse(text: str) -> tuple[str, Operator | None]:
    """The PV name and operator of a request's ``pv``: ``mean_60(LAB:X)`` or ``LAB:X``."""
    match = _CALL.fullmatch(text.strip())
    if match is None:
        return text.strip(), None
    name, pv = match["op"], match["pv"].strip()
    if name not in OPERATORS:
        raise OperatorError(
            f"unknown operator {name!r}; supported: {', '.join(OPERATORS)} "
            "(as op_N(pv), N a positive integer)"
        )
    n = int(match["n"]) if match["n"] is not None else DEFAULT_BIN
    if n <= 0:
        raise OperatorError(f"{name}_{n}: N must be a positive integer")
    return pv, Operator(name, n)


def bins(op: Operator, start: int, end: int) -> int:
    """How many bins ``op`` gives over [start, end] (POSIX seconds); refused past MAX_BINS."""
    if op.name == "optimized":
        if op.n > MAX_BINS:
            raise OperatorError(f"optimized_{op.n}: at most {MAX_BINS} bins; choose a smaller N")
        return op.n + 2
    if op.name in ("nth", "ncount"):
        return 1
    count = (end // op.n) - (start // op.n) + 2  # (and the bin of the value at start)
    if op.name == "caplotbinning":
        count *= 4  # (up to four rows a bin)
    if count > MAX_BINS:
        raise OperatorError(f"{op.name}_{op.n}: more than {MAX_BINS} bins; choose a larger N")
    return count


@dataclass(frozen=True)
class Result:
    """What an operator gives: rows, their payload type and elements per row."""

    rows: Samples
    kind: PayloadType
    elements: int = 1


def apply(
    op: Operator, rows: Samples, before: Samples, start: int, end: int, kind: PayloadType
) -> Result:
    """``op`` over ``rows`` (in [start, end]) and ``before`` (0 or 1 row before start)."""
    if op.name in SAMPLES:
        return Result(_pick(rows, op.n, op.name == "firstSample"), kind)
    if op.name == "nth":
        return Result(rows.take(slice(0, None, op.n)), kind)
    if op.name == "ncount":
        one = Samples(
            np.array([start], np.int64),
            np.zeros(1, np.int32),
            np.array([len(rows)]),
            np.zeros(1, np.int32),
            np.zeros(1, np.int32),
        )
        return Result(one, PayloadType.SCALAR_INT)
    if op.name == "optimized":
        if len(rows) + len(before) <= op.n:
            return Result(_concat(before, rows), kind)
        width = max(1, (end - start) // op.n)
        return Result(
            _binned(rows, before, width, start, end, _summary, fill=True, vector=True),
            PayloadType.WAVEFORM_DOUBLE,
            elements=5,
        )
    bins(op, start, end)
    if op.name == "caplotbinning":
        return Result(_caplot(rows, before, op.n, start, end), PayloadType.SCALAR_DOUBLE)
    if op.name == "count":
        return Result(
            _binned(rows, before, op.n, start, end, len, fill=True, zero_empty=True),
            PayloadType.SCALAR_DOUBLE,
        )
    return Result(
        _binned(rows, before, op.n, start, end, STATISTICS[op.name], fill=True),
        PayloadType.SCALAR_DOUBLE,
    )


def _concat(a: Samples, b: Samples) -> Samples:
    if not len(a):
        return b
    return Samples(
        *(
            np.concatenate([getattr(a, f), getattr(b, f)])
            for f in ("secs", "nanos", "value", "severity", "status")
        )
    )


def _pick(rows: Samples, n: int, first: bool) -> Samples:
    """The first (or last) sample of each bin, as it was recorded."""
    if not len(rows):
        return rows
    bins = rows.secs // n
    if first:
        keep = np.r_[True, bins[1:] != bins[:-1]]
    else:
        keep = np.r_[bins[1:] != bins[:-1], True]
    return rows.take(keep)


def _caplot(rows: Samples, before: Samples, width: int, start: int, end: int) -> Samples:
    """``caplotbinning_N``, as the appliance's ``CAPlotBinning.java`` computes it.

    Bins ``s // N`` from the bin of ``start`` to that of ``end``; an event not later
    than the one before it is skipped. A bin without events stays empty; one with one
    or two keeps them, stamped at their whole seconds; one with more gives four rows:
    its first value at the bin's start, its minimum a quarter in, its maximum halfway
    and its last value three quarters in. Each row has the bin's highest severity.
    The newest event before the first bin, if any, comes first as a bin of its own
    (severity 0), and only when the range holds events. Values are doubles; the gap
    rows of a disconnection (NaN) are left out of the minimum and maximum.
    """
    first_bin, last_bin = start // width, end // width
    events = _concat(before, rows)
    if len(events) > 1:
        stamps = events.stamps()
        events = events.take(np.r_[True, stamps[1:] > np.maximum.accumulate(stamps)[:-1]])
    number = events.secs // width
    inside = events.take((number >= first_bin) & (number <= last_bin))
    if not len(inside):
        return Samples.empty()
    secs: list[int] = []
    values: list[float] = []
    severities: list[int] = []
    earlier = np.flatnonzero(number < first_bin)
    if len(earlier):
        k = int(earlier[-1])
        secs.append(int(events.secs[k]))
        values.append(float(events.value[k]))
        severities.append(0)
    value = np.asarray(inside.value, np.float64)
    number = inside.secs // width
    starts = np.r_[0, np.flatnonzero(np.diff(number)) + 1]
    stops = np.r_[starts[1:], len(inside)]
    lows, highs = np.fmin.reduceat(value, starts), np.fmax.reduceat(value, starts)
    worst = np.maximum.reduceat(np.asarray(inside.severity, np.int64), starts)
    for b, lo, hi in zip(range(len(starts)), starts, stops, strict=True):
        if hi - lo <= 2:
            picked = [(int(inside.secs[k]), float(value[k])) for k in range(lo, hi)]
        else:
            base = int(number[lo]) * width
            picked = [
                (base, float(value[lo])),
                (base + int(0.25 * width), float(lows[b])),
                (base + int(0.50 * width), float(highs[b])),
                (base + int(0.75 * width), float(value[hi - 1])),
            ]
        for stamp, result in picked:
            secs.append(stamp)
            values.append(result)
            severities.append(int(worst[b]))
    n = len(secs)
    return Samples(
        np.array(secs, np.int64),
        np.zeros(n, np.int32),
        np.array(values, np.float64),
        np.array(severities, np.int32),
        np.zeros(n, np.int32),
    )


def _summary(v: np.ndarray) -> list[float]:
    return [_mean(v), _std(v), _of(np.min)(v), _of(np.max)(v), float(len(v))]


def _binned(
    rows: Samples,
    before: Samples,
    width: int,
    start: int,
    end: int,
    stat: Callable[[np.ndarray], object],
    *,
    fill: bool,
    zero_empty: bool = False,
    vector: bool = False,
) -> Samples:
    first_bin, last_bin = start // width, end // width
    results: dict[int, tuple[object, int]] = {}
    if len(before) and not (len(rows) and rows.secs[0] == start and rows.nanos[0] == 0):
        results[first_bin - 1] = (stat(_finite(before.value)), int(before.severity.max()))
    if len(rows):
        bins = rows.secs // width
        cuts = np.flatnonzero(np.diff(bins)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rows)], strict=True):
            values = rows.value[lo:hi]
            results[int(bins[lo])] = (
                stat(values) if stat is len else stat(_finite(values)),
                int(rows.severity[lo:hi].max()),
            )
    return fill_bins(
        results, first_bin, last_bin, width, fill=fill, zero_empty=zero_empty, vector=vector
    )


def fill_bins(
    results: dict[int, tuple[object, int]],
    first_bin: int,
    last_bin: int,
    width: int,
    *,
    fill: bool,
    zero_empty: bool = False,
    vector: bool = False,
) -> Samples:
    """Rows of bins ``first_bin`` (or one before, if it has a result) to ``last_bin``.

    ``results`` maps bin numbers to (value, severity). An empty bin repeats the one
    before (``fill``), counts 0 (``zero_empty``) or is left out. A row is stamped at its
    bin's middle.
    """
    if not results:
        return Samples.empty()
    low = min(min(results), first_bin)
    stamps, values, severities = [], [], []
    found: tuple[object, int] | None = None
    for number in range(low, last_bin + 1):
        if number in results:
            found = results[number]
        elif not fill:
            found = None
        elif found is not None and zero_empty:
            found = (0, 0)
        if found is None:
            continue
        stamps.append(number * width + width // 2)
        values.append(found[0])
        severities.append(found[1])
    n = len(stamps)
    nanos = 500_000_000 if width % 2 else 0
    value = np.array(values, np.float64)
    return Samples(
        np.array(stamps, np.int64),
        np.full(n, nanos, np.int32),
        value.reshape(n, 5) if vector else value,
        np.array(severities, np.int32),
        np.zeros(n, np.int32),
    )


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values[np.isfinite(values)]
