"""Per-channel history in numpy: columns time, value, severity, status, ns.

Memory grows by doubling up to ``capacity`` rows from none, so an idle channel or a
short recording with a large capacity costs little; a numeric row costs 26 bytes (52 at
worst right after growing): time as a float and as exact nanoseconds, value, alarm.
Not thread-safe: the owner holds a lock.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_FIRST_GROWTH = 16  # rows allocated by the first append: an idle channel costs nothing
_FIRST_ALLOCATION_BYTES = 1 << 20  # array rows: the first allocation is at most about 1 MB


@functools.cache
def _empty(dtype: npt.DTypeLike, row_shape: tuple[int, ...] | None = ()) -> np.ndarray:
    """A zero-row column, shared by every empty ring (it holds nothing to change)."""
    return np.zeros((0, *(row_shape or ())), dtype)


@dataclass(frozen=True)
class Columns:
    """History rows, oldest first.

    ``time`` is POSIX seconds as floats (what every computation uses); ``ns``, where
    known, the source timestamps exactly, as int64 nanoseconds since the epoch (a float
    holds them only to about 0.24 us today). See :meth:`stamps`.
    """

    time: np.ndarray
    value: np.ndarray
    severity: np.ndarray
    status: np.ndarray
    ns: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index: slice | np.ndarray) -> Columns:
        """The rows ``index`` selects (a slice, indices or a boolean mask)."""
        ns = None if self.ns is None else self.ns[index]
        return Columns(
            self.time[index], self.value[index], self.severity[index], self.status[index], ns
        )

    def tail(self, n: int) -> Columns:
        """The newest ``n`` rows."""
        if n >= len(self):
            return self
        return self.take(slice(len(self) - n, None))

    def select(self, keep: np.ndarray) -> Columns:
        """The rows where ``keep`` (a boolean mask) is true."""
        return self.take(keep)

    def stamps(self) -> np.ndarray:
        """Each row's timestamp in int64 nanoseconds: exact where known, else from ``time``."""
        return self.ns if self.ns is not None else to_ns(self.time)

    @classmethod
    def empty(cls, dtype: npt.DTypeLike = np.float64) -> Columns:
        """No rows."""
        return cls(np.zeros(0), np.zeros(0, dtype), np.zeros(0, np.int8), np.zeros(0, np.int8))


def to_ns(time: np.ndarray | float) -> np.ndarray:
    """POSIX seconds (floats) as int64 nanoseconds (rounded to the float's precision).

    A time that is not a finite number (a row never to be loaded) gives 0.
    """
    seconds = np.asarray(time, np.float64)
    seconds = np.where(np.isfinite(seconds) & (np.abs(seconds) < 9e9), seconds, 0.0)
    return np.rint(seconds * 1e9).astype(np.int64)


class Ring:
    """Newest ``capacity`` rows; ``overwrite=False`` refuses rows once full (fill mode).

    Values are scalars (``row_shape=()``) or arrays of one shape. With ``row_shape=None``
    the shape and dtype are taken from the first value appended, and ``max_bytes`` (if
    given) lowers the capacity so that the values fit in it.

    Array rows are kept by reference, not copied: a read-only array (a received
    waveform or frame, whose buffer nothing can change) is stored as it is, a writable
    one is copied once. Appending a 1e4-double waveform is then a pointer store instead
    of an 80 kB copy; the copy into one 2-D array happens when the rows are read
    (:meth:`columns`), which is rare.
    """

    def __init__(
        self,
        capacity: int,
        dtype: npt.DTypeLike = np.float64,
        *,
        overwrite: bool = True,
        row_shape: tuple[int, ...] | None = (),
        max_bytes: int | None = None,
    ):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity, self.dtype, self.overwrite = capacity, np.dtype(dtype), overwrite
        self.row_shape, self.max_bytes = row_shape, max_bytes
        self.by_reference = row_shape is None  # array rows (see the class text)
        self.total = 0  # rows appended since the last clear, including overwritten ones
        #: Changes on every clear: a reader that began before it must start again. It
        #: starts at random, so a cursor of an earlier process (a restarted collector)
        #: never matches a new ring by chance.
        self.epoch = secrets.randbits(40)
        #: The newest row's time (-inf with no row): rows are kept in time order.
        self.newest = -np.inf
        self._newest_ns = -(2**62)  # the newest row's exact stamp (ns)
        self._allocate(0)

    @property
    def sized(self) -> bool:
        """Whether the row shape is known (always, for scalar rings)."""
        return self.row_shape is not None

    def _size_from(self, value: Any) -> None:
        array = np.asarray(value)
        self.row_shape, self.dtype = array.shape, array.dtype
        row_bytes = max(1, array.nbytes + 10)
        if self.max_bytes is not None:
            self.capacity = max(1, min(self.capacity, self.max_bytes // row_bytes))
        first = max(1, min(_FIRST_GROWTH, _FIRST_ALLOCATION_BYTES // row_bytes))
        self._allocate(min(first, self.capacity))

    def _allocate(self, size: int) -> None:
        if size == 0:  # an idle channel: shared empty columns (10,000 channels: 5 MB less)
            self._time, self._ns = _empty(np.float64), _empty(np.int64)
            self._severity = self._status = _empty(np.int8)
            self._value = _empty(object if self.by_reference else self.dtype, self.row_shape)
            self._start, self._len = 0, 0
            return
        self._time = np.zeros(size)
        self._ns = np.zeros(size, np.int64)
        if self.by_reference:
            self._value = np.empty(size, object)
        else:
            self._value = np.zeros((size, *(self.row_shape or ())), self.dtype)
        self._severity = np.zeros(size, np.int8)
        self._status = np.zeros(size, np.int8)
        self._start, self._len = 0, 0

    def __len__(self) -> int:
        return self._len

    @property
    def full(self) -> bool:
        """Whether ``capacity`` rows are held."""
        return self._len == self.capacity

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the columns (array rows: the rows held)."""
        total = sum(a.nbytes for a in self._arrays)
        if self.by_reference and self.row_shape is not None:
            total += self._len * int(np.prod(self.row_shape)) * self.dtype.itemsize
        return total

    def append(
        self, time: float, value: Any, severity: int, status: int, ns: int | None = None
    ) -> bool:
        """Add a row; False (nothing stored) when full and not overwriting.

        ``ns`` is the exact timestamp in nanoseconds where the source gave one.
        """
        if self.row_shape is None:
            self._size_from(value)
        size = len(self._time)
        if self._len == size:
            if size < self.capacity:
                self._grow(min(max(2 * size, _FIRST_GROWTH), self.capacity))
                size = len(self._time)
            elif not self.overwrite:
                return False
        if self._len < size:
            index = (self._start + self._len) % size
            self._len += 1
        else:
            index = self._start
            self._start = (self._start + 1) % size
        self._time[index] = time
        if ns is None:  # derived from the float, after the newest exact one
            derived = round(time * 1e9) if -9e9 < time < 9e9 else 0  # (NaN: 0)
            ns = max(derived, self._newest_ns + 1)
        self._ns[index] = self._newest_ns = ns
        if self.by_reference:
            value = self._own(value)
        self._value[index] = value
        self._severity[index] = severity
        self._status[index] = status
        self.total += 1
        self.newest = time
        return True

    def _own(self, value: Any) -> np.ndarray:
        """An array row that nobody can change under us, of the ring's shape and dtype."""
        array = np.asarray(value)
        if array.dtype != self.dtype or array.shape != self.row_shape:
            array = np.asarray(array, self.dtype).reshape(self.row_shape or ())
        if array.flags.writeable:
            array = array.copy()
            array.flags.writeable = False
        return array

    def _grow(self, size: int) -> None:
        """Reallocate to ``size`` rows, copying each held row once (oldest first)."""
        old = self._arrays
        start, held = self._start, self._len
        self._allocate(size)
        first = min(held, len(old[0]) - start)  # rows from start to the end of the old arrays
        for new, array in zip(self._arrays, old, strict=True):
            new[:first] = array[start : start + first]
            new[first:held] = array[: held - first]
        self._start, self._len = 0, held

    def _put(self, rows: Columns) -> None:
        n = len(rows)
        self._time[:n] = rows.time
        self._ns[:n] = rows.stamps()
        if self.by_reference:
            for i in range(n):
                self._value[i] = self._own(rows.value[i])
        else:
            self._value[:n] = rows.value
        self._severity[:n], self._status[:n] = rows.severity, rows.status
        self._start, self._len = 0, n

    def extend(self, rows: Columns) -> None:
        """Add many rows (for reloading): only the newest ``capacity`` are kept."""
        if len(rows) == 0:
            return
        merged = (
            concat(self.columns(), rows).tail(self.capacity)
            if self._len
            else rows.tail(self.capacity)
        )
        self.total += len(rows)
        self._allocate(max(len(self._time), len(merged)))
        self._put(merged)
        self.newest = float(merged.time[-1])
        self._newest_ns = int(merged.stamps()[-1])

    def columns(self, newest: int | None = None) -> Columns:
        """Copies of the rows, oldest first (only the ``newest`` N when given)."""
        n = self._len if newest is None else min(newest, self._len)
        arrays = self._arrays
        if n == 0:
            if self.by_reference:
                empty = np.zeros((0, *(self.row_shape or ())), self.dtype)
                others = (a[:0].copy() for a in arrays[2:])
                return Columns(self._time[:0].copy(), empty, *others)
            return Columns(*(a[:0].copy() for a in arrays))
        size = len(self._time)
        first = (self._start + self._len - n) % size
        parts = (
            [slice(first, first + n)]
            if first + n <= size
            else [
                slice(first, size),
                slice(0, first + n - size),
            ]
        )
        columns = [np.concatenate([a[p] for p in parts]) for a in arrays]
        if self.by_reference:  # one 2-D array of the rows (the one copy)
            columns[1] = np.stack(list(columns[1])) if n else columns[1]
        return Columns(*columns)

    def segments(self) -> list[Columns]:
        """The rows as views, oldest first: one or two contiguous parts, nothing copied.

        Valid until the next change of the ring (the owner's lock must be held while
        they are read). Array rows (kept by reference) come as object arrays.
        """
        if self._len == 0:
            return []
        size = len(self._time)
        end = self._start + self._len
        parts = [slice(self._start, min(end, size))]
        if end > size:
            parts.append(slice(0, end - size))
        return [Columns(*(a[p] for a in self._arrays)) for p in parts]

    @property
    def first_index(self) -> int:
        """The logical index of the oldest row held (a row's index is ``total`` before it)."""
        return self.total - self._len

    def index_of(self, time: float, side: str = "left") -> int:
        """The logical index where ``time`` would go (rows are in time order)."""
        index = self.first_index
        for part in self.segments():
            found = int(np.searchsorted(part.time, time, side))  # type: ignore[call-overload]
            index += found
            if found < len(part):
                break
        return index

    def indices_of(self, times: np.ndarray, side: str = "left") -> np.ndarray:
        """:meth:`index_of` of many times at once (``times`` ascending)."""
        found = np.full(len(times), self.first_index, np.int64)
        parts = self.segments()
        if parts:
            head = np.searchsorted(parts[0].time, times, side)  # type: ignore[call-overload]
            found += head
            if len(parts) > 1:
                past = head >= len(parts[0])  # beyond the first part: into the second
                found[past] += np.searchsorted(parts[1].time, times[past], side)  # type: ignore[call-overload]
        return found

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Copies of (value, severity) of the rows at logical ``indices`` (all held)."""
        at = (self._start + indices - self.first_index) % len(self._time)
        return self._value[at], self._severity[at]

    def copy(self, first: int, stop: int) -> Columns:
        """Copies of the rows with logical indices in [first, stop) that are still held.

        Array rows come as object arrays (like :meth:`segments`).
        """
        first, stop = max(first, self.first_index), min(stop, self.total)
        if stop <= first:
            return Columns(*(a[:0].copy() for a in self._arrays))
        size = len(self._time)
        lo = (self._start + first - self.first_index) % size
        n = stop - first
        if lo + n <= size:
            return Columns(*(a[lo : lo + n].copy() for a in self._arrays))
        return Columns(*(np.concatenate((a[lo:], a[: lo + n - size])) for a in self._arrays))

    @property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The columns in :class:`Columns`' order (time, value, severity, status, ns)."""
        return self._time, self._value, self._severity, self._status, self._ns

    def row(self, index: int) -> tuple[float, Any, int, int] | None:
        """Row ``index`` (0 oldest, -1 newest) as (time, value copy, severity, status)."""
        if not -self._len <= index < self._len:
            return None
        i = (self._start + index % self._len) % len(self._time)
        value = self._value[i]
        value = value.copy() if isinstance(value, np.ndarray) else value  # a writable copy
        return float(self._time[i]), value, int(self._severity[i]), int(self._status[i])

    def clear(self) -> None:
        """Forget every row and free the memory (the row shape stays)."""
        self.total = 0
        self.epoch += 1
        self.newest = -np.inf
        self._newest_ns = -(2**62)
        self._allocate(0)


def concat(*parts: Columns) -> Columns:
    """The rows of every part, in order (one part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    exact = all(p.ns is not None for p in parts)
    return Columns(
        np.concatenate([p.time for p in parts]),
        np.concatenate([p.value for p in parts]),
        np.concatenate([p.severity for p in parts]),
        np.concatenate([p.status for p in parts]),
        np.concatenate([p.stamps() for p in parts]) if exact else None,
    )
