"""Reads of a live channel across its store and its ring (``persist``: see :mod:`._older`).

A read that stays inside the ring is the ring's (:func:`~._query.query_ring`, with its
block summaries). One that reaches before the ring's oldest row reads the older rows
from the store's snapshot first, then the ring's, as one history: raw rows, bins,
pages by position (the indices go on across both) and windows alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from epics_collector.storage._older import Boundary, OlderRows, boundary_of, epoch_of
from epics_collector.storage._query import PAGE, Query, page_columns, query_ring, run
from epics_collector.storage._reads import (
    OverwrittenError,
    RangeRead,
    ReadError,
    StaleReadError,
    give_way,
)
from epics_collector.storage._ring import Columns, Ring


class OnDisk(Protocol):
    """The rows of a collector's channels that left their rings (the spill store's)."""

    def older(self, alias: str, boundary: Boundary) -> OlderRows:
        """A snapshot of the channel's rows older than ``boundary``."""
        ...

    def oldest(self, alias: str) -> float:
        """The time of the channel's oldest row on disk (inf: none)."""
        ...

    def reduced_until(self, alias: str) -> float:
        """Until when the policy reduced the channel's rows (0: never)."""
        ...

    def rows(self, alias: str) -> int:
        """How many rows of the channel are on disk."""
        ...


class Spanning:
    """One channel's reads across ``disk`` and its ``ring`` (any thread)."""

    def __init__(
        self,
        lock: threading.Lock,
        ring: Ring,
        alias: str,
        disk: OnDisk,
        arrivals: Callable[[], int] | None = None,
    ) -> None:
        self.lock, self.ring, self.alias, self.disk = lock, ring, alias, disk
        self.arrivals = arrivals

    def reaches_disk(self, start: float) -> bool:
        """Whether a read from ``start`` on reaches rows only the store holds."""
        with self.lock:
            segments = self.ring.segments()
            oldest = float(segments[0].time[0]) if segments else np.inf
            held = len(self.ring)
        if start >= oldest:
            return False
        first = self.disk.oldest(self.alias)
        # (rows stamped alike: the store holds more of that stamp than the ring)
        return first < oldest or (first == oldest and self.disk.rows(self.alias) > held)

    def parts(self, start: float, end: float, deadline: float | None = None) -> Iterator[Columns]:
        """The rows in [start, end], oldest first: the store's, then the ring's."""
        boundary = boundary_of(self.lock, self.ring)
        if start < boundary.time:
            arrived = self.arrivals() if self.arrivals else 0
            began = time.monotonic()
            with self.disk.older(self.alias, boundary) as older:
                for part in older.rows(start, min(end, boundary.time)):
                    _check(deadline)
                    yield part
                    arrived, began = give_way(self.arrivals, arrived, began)
        yield from RangeRead(
            self.lock, self.ring, start, end, deadline=deadline, arrivals=self.arrivals
        )

    def query(
        self, kind: str, query: Query, deadline: float | None = None
    ) -> dict[str, np.ndarray]:
        """A query of the channel (see :func:`~._query.run`); says ``reduced`` rows."""
        if query.operator == PAGE:
            return self._page(kind, query, deadline)
        if not self.reaches_disk(query.start):
            return query_ring(self.lock, self.ring, kind, query, deadline, self.arrivals)
        answer = run(self.parts(query.start, query.end, deadline), query, kind)
        until = self.disk.reduced_until(self.alias)
        if until > query.start:
            answer["reduced"] = np.array([self._operator()])
        return answer

    def _operator(self) -> str:
        boundary = boundary_of(self.lock, self.ring)
        with self.disk.older(self.alias, boundary) as older:
            return older.reduced[0] if older.reduced else ""

    def _page(self, kind: str, query: Query, deadline: float | None) -> dict[str, np.ndarray]:
        """A page by position across the store and the ring."""
        boundary = boundary_of(self.lock, self.ring)
        epoch = epoch_of(boundary.epoch, self.disk.reduced_until(self.alias))
        cursor = query.cursor
        on_disk = (cursor is not None and cursor[1] + 1 < boundary.first_index) or (
            cursor is None
            and query.start < boundary.time
            and self.disk.oldest(self.alias) <= query.end
        )
        if not on_disk:
            if cursor is not None:
                if cursor[0] != epoch:
                    raise _stale()
                query = Query(
                    query.start, query.end, query.points, PAGE, (boundary.epoch, cursor[1])
                )
            answer = query_ring(self.lock, self.ring, kind, query, deadline, self.arrivals)
            answer["epoch"] = np.array([epoch], np.int64)
            return answer
        with self.disk.older(self.alias, boundary) as older:
            if cursor is not None:
                if cursor[0] != older.epoch:
                    raise _stale()
                position = cursor[1] + 1 - older.first_index
                if position < 0:
                    raise OverwrittenError(
                        f"{-position} rows after the previous page were deleted by the "
                        "retention policy before they were read: read again from the start"
                    )
            else:
                position = older.position_of(query.start, "left")
                if position > 0 and (
                    position == older.count
                    or next(older.from_position(position, 1, np.inf)).time[0] > query.start
                ):
                    position -= 1  # no row at start itself: the one before it (the value then)
            parts = list(older.from_position(position, query.points, query.end))
            held = sum(len(p) for p in parts)
            if held < query.points and position + held >= older.count:
                parts += list(
                    RangeRead.page(
                        self.lock,
                        self.ring,
                        query.start,
                        query.end,
                        query.points - held,
                        (boundary.epoch, boundary.first_index - 1),
                        deadline=deadline,
                        arrivals=self.arrivals,
                    )
                )
            answer = page_columns(parts, kind)
            answer["index"] = np.arange(
                older.first_index + position,
                older.first_index + position + len(answer["time"]),
                dtype=np.int64,
            )
            answer["epoch"] = np.array([older.epoch], np.int64)
            if older.reduced and older.reduced[1] > float(
                answer["time"][0] if len(answer["time"]) else np.inf
            ):
                answer["reduced"] = np.array([older.reduced[0]])
            return answer


def _stale() -> StaleReadError:
    return StaleReadError(
        "the history changed since the previous page (cleared, reduced by the retention "
        "policy, or the collector restarted): read again from the start"
    )


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ReadError("the read took too long: narrow the range")
