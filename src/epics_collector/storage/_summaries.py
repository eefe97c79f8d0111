"""Block summaries of a number ring: long binned queries in O(bins), not O(rows).

A ring's rows are immutable once written (until overwritten or cleared), so their
statistics per block of :data:`BLOCK` rows (by logical index) can be kept: rows, values,
sum, shifted sum and sum of squares (from one reference value, as the bins keep them),
min, max and worst severity. A binned query (``mean``, ``min``,
``max``, ``minmax``, ``count``) over many rows then takes each bin's whole blocks from
the summaries and only its edge rows (fewer than two blocks a bin) from the ring: the
same bins as reading every row, with sums added in another order (equal to rounding).

The summaries are built by the first query that needs them, then extended by later
ones with the blocks completed since: recording never computes them. They follow the
ring: blocks overwritten are dropped, a Clear (a new epoch) starts them again. One lock
of their own; the ring's lock is held only to copy a chunk of rows, as every read does.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from typing import TYPE_CHECKING

import numpy as np

from epics_collector.storage._reads import CHUNK, ReadError, StaleReadError

if TYPE_CHECKING:
    from epics_collector.storage._query import Bins, Query
    from epics_collector.storage._ring import Ring

BLOCK = 128  # rows a block summarises
#: a query uses the summaries from this many rows per bin (fewer: reading them is as fast)
ROWS_PER_BIN = 4 * BLOCK
_FIELDS = ("count", "total", "shifted", "squares", "low", "high", "severity")


class Summaries:
    """Per-block statistics of one number ring (see the module text)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # building and reading them: one query at a time
        self.epoch: int | None = None
        self.first = 0  # the first block held (logical block number)
        self.reference: float | None = None  # values are summed less this (std)
        self._arrays: dict[str, np.ndarray] = {}
        self._used = 0  # blocks held

    @property
    def built(self) -> int:
        """One past the last block held."""
        return self.first + self._used

    def _reset(self, epoch: int, first: int) -> None:
        self.epoch, self.first, self.reference, self._used = epoch, first, None, 0
        self._arrays = {name: np.zeros(0) for name in _FIELDS}

    def update(self, ring_lock: threading.Lock, ring: Ring, deadline: float | None) -> None:
        """Follow the ring: drop overwritten blocks, summarise those completed since."""
        with ring_lock:
            epoch, oldest, total = ring.epoch, ring.first_index, ring.total
        if epoch != self.epoch:
            self._reset(epoch, math.ceil(oldest / BLOCK))
        first_whole = math.ceil(oldest / BLOCK)
        if first_whole > self.first:  # overwritten (partly, for the first): dropped
            drop = min(first_whole - self.first, self._used)
            for name, values in self._arrays.items():
                self._arrays[name] = values[drop:]
            self._used -= drop
            self.first = first_whole
        if self._used == 0:
            self.first = first_whole
        end = total // BLOCK
        block = self.built
        step = max(1, CHUNK // BLOCK)
        while block < end:
            if deadline is not None and time.monotonic() > deadline:
                raise ReadError("summarising the history took too long: narrow the range")
            stop = min(end, block + step)
            with ring_lock:
                if ring.epoch != epoch:
                    raise StaleReadError("the history was cleared during the read: ask again")
                if block * BLOCK < ring.first_index:  # overwritten while we worked
                    raise StaleReadError("the ring moved on during the read: ask again")
                rows = ring.copy(block * BLOCK, stop * BLOCK)
            self._append(np.asarray(rows.value, np.float64), rows.severity)
            block = stop

    def _append(self, values: np.ndarray, severity: np.ndarray) -> None:
        """Summaries of whole blocks of rows (``len`` a multiple of BLOCK)."""
        starts = np.arange(0, len(values), BLOCK)
        valid = ~np.isnan(values)
        if self.reference is None and valid.any():
            self.reference = float(values[np.argmax(valid)])
        shifted = np.where(valid, values - (self.reference or 0.0), 0.0)
        found = {
            "count": np.add.reduceat(valid.astype(np.int64), starts),
            "total": np.add.reduceat(np.where(valid, values, 0.0), starts),
            "shifted": np.add.reduceat(shifted, starts),
            "squares": np.add.reduceat(shifted * shifted, starts),
            "low": np.fmin.reduceat(values, starts),
            "high": np.fmax.reduceat(values, starts),
            "severity": np.maximum.reduceat(severity, starts),
        }
        for name, more in found.items():
            self._arrays[name] = np.concatenate((self._arrays[name], more))
        self._used += len(starts)

    def binned(self, ring_lock: threading.Lock, ring: Ring, query: Query, bins: Bins) -> None:
        """Fill ``bins`` with every row of [start, end]: whole blocks and edge rows."""
        n = query.points
        edges = np.concatenate(([query.start], bins.edges, [query.end]))
        with ring_lock:
            if ring.epoch != self.epoch:
                raise StaleReadError("the history was cleared during the read: ask again")
            index = ring.indices_of(edges[:-1], "left")
            index = np.concatenate((index, ring.indices_of(edges[-1:], "right")))
        lo, hi = index[:-1], np.maximum(index[1:], index[:-1])
        first_block = np.maximum((lo + BLOCK - 1) // BLOCK, self.first)
        stop_block = np.minimum(hi // BLOCK, self.built)
        whole = stop_block > first_block
        # edge rows: before the first whole block and after the last (all rows without)
        head_end = np.where(whole, first_block * BLOCK, hi)
        tail_start = np.where(whole, stop_block * BLOCK, hi)
        starts = np.concatenate((lo, tail_start))
        stops = np.concatenate((head_end, hi))
        owner = np.concatenate((np.arange(n), np.arange(n)))
        keep = stops > starts
        starts, stops, owner = starts[keep], stops[keep], owner[keep]
        order = np.argsort(starts, kind="stable")
        starts, stops, owner = starts[order], stops[order], owner[order]
        lengths = stops - starts
        if len(lengths):
            offsets = np.cumsum(lengths) - lengths
            indices = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
            with ring_lock:
                if ring.epoch != self.epoch or (len(indices) and indices[0] < ring.first_index):
                    raise StaleReadError("the ring moved on during the read: ask again")
                values, severity = ring.gather(indices)
            bins.add_rows(owner, offsets, np.asarray(values, np.float64), severity)
        if whole.any():
            self._add_blocks(bins, np.flatnonzero(whole), first_block[whole], stop_block[whole])

    def _add_blocks(
        self, bins: Bins, owner: np.ndarray, first: np.ndarray, stop: np.ndarray
    ) -> None:
        """Each bin's whole blocks [first, stop) (ascending, disjoint) into ``bins``."""
        at = np.empty(2 * len(owner), np.int64)
        at[0::2], at[1::2] = first - self.first, stop - self.first

        def over(name: str, ufunc: np.ufunc, fill: float) -> np.ndarray:
            values = np.append(self._arrays[name][: self._used], fill)  # (a stop may be the end)
            return ufunc.reduceat(values, at)[0::2]

        bins.add_summary(
            owner,
            rows=(stop - first) * BLOCK,
            count=over("count", np.add, 0).astype(np.int64),
            total=over("total", np.add, 0.0),
            shifted=over("shifted", np.add, 0.0),
            squares=over("squares", np.add, 0.0),
            low=over("low", np.fmin, np.nan),
            high=over("high", np.fmax, np.nan),
            severity=over("severity", np.maximum, 0).astype(np.int8),
        )


_BY_RING: weakref.WeakKeyDictionary[Ring, Summaries] = weakref.WeakKeyDictionary()
_BY_RING_LOCK = threading.Lock()


def summaries_of(ring: Ring) -> Summaries:
    """The ring's summaries (made on first use; kept while the ring lives)."""
    with _BY_RING_LOCK:
        found = _BY_RING.get(ring)
        if found is None:
            found = _BY_RING[ring] = Summaries()
        return found
