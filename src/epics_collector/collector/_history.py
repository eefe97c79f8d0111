"""The recorded history as readers see it: read-only, under the recorder's lock per chunk.

:class:`History` is the only face of the recorder that readers get (the history PVs,
views, queries, exports, trigger windows): it can read rows, never change them. Long
reads go chunk by chunk (:class:`RangeRead`), so recording never waits for a reader.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from epics_collector.collector._reduce import Row
from epics_collector.storage import (
    Columns,
    OnDisk,
    Query,
    RangeRead,
    Spanning,
    concat,
    query_ring,
)

if TYPE_CHECKING:
    from epics_collector.collector._recorder import Channel, Recorder


class History:
    """Reads a recorder's channels (any thread); never writes."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._disk: OnDisk | None = None

    def read_from(self, disk: OnDisk) -> None:
        """Read the rows that left the rings from ``disk`` (the spill store; at start)."""
        self._disk = disk

    def _spanning(self, channel: Channel) -> Spanning | None:
        if self._disk is None:
            return None
        return Spanning(self._recorder.lock, channel.ring, channel.alias, self._disk, self._arrived)

    @property
    def channels(self) -> list[Channel]:
        """The channels, recorded and pushed, in the order they were made."""
        return self._recorder.channels

    @property
    def by_alias(self) -> dict[str, Channel]:
        """The channels by alias."""
        return self._recorder.by_alias

    @property
    def recording(self) -> bool:
        """Whether updates are being recorded now."""
        return self._recorder.recording

    @property
    def arrivals(self) -> int:
        """Source updates received so far (readers give way while it grows fast)."""
        return self._recorder.arrivals

    def read(
        self, channel: Channel, start: float, end: float, deadline: float | None = None
    ) -> RangeRead:
        """A channel's rows in [start, end], read chunk by chunk (see :class:`RangeRead`)."""
        return RangeRead(
            self._recorder.lock,
            channel.ring,
            start,
            end,
            deadline=deadline,
            arrivals=self._arrived,
        )

    def _arrived(self) -> int:
        return self._recorder.arrivals

    def window(self, channel: Channel, start: float, end: float) -> tuple[Columns, bool]:
        """A channel's rows in [start, end], and whether the history still held ``start``.

        Only the window's rows are copied, chunk by chunk; the ring is never copied whole.
        """
        ring = channel.ring
        spanning = self._spanning(channel)
        with self._recorder.lock:
            oldest = ring.row(0)
            complete = ring.total == len(ring) or (oldest is not None and oldest[0] <= start)
            if not len(ring):
                return ring.columns(0), complete
        if spanning is not None and spanning.reaches_disk(start):
            complete = complete or spanning.disk.oldest(channel.alias) <= start
            parts = list(spanning.parts(start, end))
        else:
            parts = list(self.read(channel, start, end))
        if not parts:
            with self._recorder.lock:
                return ring.columns(0), complete
        return (concat(*parts) if ring.row_shape == () else _stacked(parts)), complete

    def rows(self, channel: Channel) -> Columns:
        """A copy of a channel's rows, oldest first (copied chunk by chunk)."""
        rows, _ = self.window(channel, -math.inf, math.inf)
        return rows

    def tail(self, channel: Channel, rows: int) -> Columns:
        """A copy of a channel's newest ``rows`` rows, oldest first."""
        with self._recorder.lock:
            return channel.ring.columns(rows)

    def span(self, channel: Channel) -> tuple[float, float]:
        """The times of a channel's oldest and newest rows ((0, 0) when it has none).

        The oldest is on disk when rows left the ring for the spill store.
        """
        with self._recorder.lock:
            segments = channel.ring.segments()
            if not segments:
                return 0.0, 0.0
            first, last = float(segments[0].time[0]), float(segments[-1].time[-1])
        if self._disk is not None:
            first = min(first, self._disk.oldest(channel.alias))
        return first, last

    def query(
        self, channel: Channel, query: Query, deadline: float | None = None
    ) -> dict[str, np.ndarray]:
        """A time range of a channel's rows, raw, binned or a page (see :func:`query_ring`)."""
        spanning = self._spanning(channel)
        if spanning is not None:
            return spanning.query(channel.kind, query, deadline)
        return query_ring(
            self._recorder.lock, channel.ring, channel.kind, query, deadline, self._arrived
        )

    def frame(self, channel: Channel, index: int) -> Row | None:
        """One row of a channel (0 oldest, -1 newest); None if there is no such row."""
        with self._recorder.lock:
            return channel.ring.row(index)


def _stacked(parts: list[Columns]) -> Columns:
    """Array rows (a ring's as object arrays, the store's as 2-D arrays) as one 2-D column."""
    values = [row for part in parts for row in part.value]
    exact = all(p.ns is not None for p in parts)
    return Columns(
        np.concatenate([p.time for p in parts]),
        np.stack(values),
        np.concatenate([p.severity for p in parts]),
        np.concatenate([p.status for p in parts]),
        np.concatenate([p.stamps() for p in parts]) if exact else None,
    )
