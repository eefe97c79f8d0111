"""Rows reduced to one row per bin of an EAA operator, as the retrieval API bins them.

A row of POSIX second ``s`` is in bin ``s // N``. ``mean``, ``median``, ``min`` and
``max`` give the statistic of the bin's finite values stamped at the bin's middle
(``bin * N + N / 2``), NaN when the bin holds only gap rows, with the bin's worst
severity and that row's status; ``firstSample`` and ``lastSample`` keep one row of
each bin as it was recorded. So ``mean_60`` read back over rows reduced to ``mean_60``
gives the same answer as over the raw rows.
"""

from __future__ import annotations

import numpy as np

from epics_collector.storage._policy import Reducer
from epics_collector.storage._ring import Columns


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else np.nan


def bin_of(time: np.ndarray, n: int) -> np.ndarray:
    """The bin numbers of row times (whole POSIX seconds // n)."""
    return np.floor(time).astype(np.int64) // n


def reduce_rows(rows: Columns, reducer: Reducer) -> Columns:
    """``rows`` (times ascending, numbers) as one row per non-empty bin of ``reducer``."""
    if not len(rows):
        return rows
    bins = bin_of(rows.time, reducer.n)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    if reducer.name == "firstSample":
        return rows.take(starts)
    ends = np.r_[starts[1:], len(rows)]
    if reducer.name == "lastSample":
        return rows.take(ends - 1)
    values = np.asarray(rows.value, np.float64)
    finite = np.isfinite(values)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        if reducer.name == "mean":
            result = np.add.reduceat(np.where(finite, values, 0.0), starts) / counts
        elif reducer.name == "min":
            result = np.fmin.reduceat(np.where(finite, values, np.nan), starts)
        elif reducer.name == "max":
            result = np.fmax.reduceat(np.where(finite, values, np.nan), starts)
        else:
            result = np.array([_median(values[lo:hi]) for lo, hi in zip(starts, ends, strict=True)])
    result[counts == 0] = np.nan  # only gap rows: the bin is a gap
    # the worst severity's first row of each bin (its status goes with it)
    order = np.lexsort((np.arange(len(rows)), -rows.severity.astype(np.int64), bins))
    worst = order[np.r_[True, bins[order][1:] != bins[order][:-1]]]
    time = bins[starts].astype(np.float64) * reducer.n + reducer.n / 2
    return Columns(
        time,
        result,
        rows.severity[worst],
        rows.status[worst],
        (bins[starts] * reducer.n * 1_000_000_000 + reducer.n * 500_000_000).astype(np.int64),
    )
