"""Reads of a ring that never hold its lock for long: a time range, chunk by chunk.

Every reader of a history (Query, View, export, retrieval) goes through
:class:`RangeRead`. It finds the range's rows under the owner's lock, then copies them
out ``chunk`` rows at a time, taking the lock only for each copy: recording never waits
for more than one chunk's copy (about 0.1 ms for 65,536 number rows), however long the
read is. Rows are addressed by their logical index (see :attr:`Ring.first_index`), so
a read stays consistent while the ring grows or overwrites: rows overwritten before
the read reached them are skipped and counted in :attr:`RangeRead.overwritten`; a
Clear during the read ends it with :class:`StaleReadError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from epics_collector.process import BUSY_RATE  # (from which a reader pauses after each chunk)
from epics_collector.storage._ring import Columns, Ring

CHUNK = 1 << 16  # rows copied under the lock at a time


class ReadError(ValueError):
    """A read cannot be answered as asked (the text says why); the caller may retry."""


class StaleReadError(ReadError):
    """The history was cleared while it was being read."""


class OverwrittenError(ReadError):
    """Rows a paged read had not reached yet were overwritten (a ring moving on)."""


class RangeRead:
    """The rows of ``ring`` with times in [start, end], as chunks (copies), oldest first.

    ``total`` is known at once (the rows in the range when the read began); rows
    appended after that are not part of the read. ``deadline`` (``time.monotonic``)
    bounds the read: past it the next chunk raises :class:`ReadError`. With
    ``strict``, rows overwritten before the read reached them raise
    :class:`OverwrittenError` instead of being skipped (a page must be whole).
    """

    def __init__(
        self,
        lock: threading.Lock,
        ring: Ring,
        start: float,
        end: float,
        *,
        chunk: int = CHUNK,
        deadline: float | None = None,
        arrivals: Callable[[], int] | None = None,
        strict: bool = False,
    ) -> None:
        self.lock, self.ring, self.chunk, self.deadline = lock, ring, chunk, deadline
        self.arrivals, self.strict = arrivals, strict
        with lock:
            self.epoch = ring.epoch
            self.first = ring.index_of(start, "left")
            self.stop = max(self.first, ring.index_of(end, "right"))
        self.total = self.stop - self.first
        self.overwritten = 0  # rows of the range overwritten before the read reached them

    @classmethod
    def page(
        cls,
        lock: threading.Lock,
        ring: Ring,
        start: float,
        end: float,
        rows: int,
        cursor: tuple[int, int] | None = None,
        **options: Any,
    ) -> RangeRead:
        """At most ``rows`` rows up to time ``end``, read strictly (see the class text).

        Without ``cursor``: from the newest row at or before ``start`` (every row at
        ``start`` itself when there are some). With ``cursor`` (``(epoch, index)`` of the
        last row an earlier page gave): from the row after it, whatever its time.
        """
        read = cls(lock, ring, start, end, strict=True, **options)
        with lock:
            if cursor is not None:
                epoch, index = cursor
                if epoch != ring.epoch:
                    raise StaleReadError(
                        "the history changed since the previous page (cleared, or the "
                        "collector restarted): read again from the start"
                    )
                first = index + 1
                if first < ring.first_index:
                    raise OverwrittenError(
                        f"{ring.first_index - first} rows after the previous page were "
                        "overwritten before they were read (the ring moved on)"
                    )
            else:
                first = read.first
                if first > ring.first_index and (
                    first == ring.total or ring.copy(first, first + 1).time[0] > start
                ):
                    first -= 1  # no row at start itself: the one before it (the value then)
            stop = max(first, ring.index_of(end, "right"))
        read.first, read.stop = first, min(stop, first + rows)
        read.total = read.stop - read.first
        return read

    def __iter__(self) -> Iterator[Columns]:
        index = self.first
        arrived = self.arrivals() if self.arrivals else 0
        began = time.monotonic()
        while index < self.stop:
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ReadError(
                    f"the read took too long ({index - self.first} of {self.total} rows "
                    "read): narrow the range"
                )
            with self.lock:
                if self.ring.epoch != self.epoch:
                    raise StaleReadError("the history was cleared during the read: ask again")
                oldest = self.ring.first_index
                if index < oldest and self.strict:
                    raise OverwrittenError(
                        f"{oldest - index} rows of the range were overwritten before they "
                        "were read (the ring moved on): ask again"
                    )
                if index < oldest:
                    self.overwritten += min(oldest, self.stop) - index
                    index = oldest
                if index >= self.stop:
                    return
                part = self.ring.copy(index, min(index + self.chunk, self.stop))
            index += len(part)
            yield part
            arrived, began = give_way(self.arrivals, arrived, began)


def give_way(arrivals: Callable[[], int] | None, arrived: int, began: float) -> tuple[int, float]:
    """After a chunk read since ``began``: pause while recording is busy; the next marks.

    ``arrived`` is the count of updates when the chunk began. Busy (updates arrived
    faster than BUSY_RATE meanwhile): a pause as long as the chunk took, at most 50 ms.
    Else none: no sleep(0) per chunk, which cost a quarter of a long read (the
    interpreter hands the GIL over every 5 ms).
    """
    if arrivals is None:
        return arrived, began
    now, count = time.monotonic(), arrivals()
    spent = now - began
    if count - arrived > BUSY_RATE * spent:
        time.sleep(min(spent, 0.05))
    return count, time.monotonic()
