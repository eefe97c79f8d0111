"""The rows not yet on disk: the face of the recorder its spill store sees.

:class:`Unflushed` hands the rows recorded since the last flush to the store (with the
counters of the same moment), gives the rows already flushed (to write a lost store
again), and puts rows loaded from disk back, all under the recorder's lock.

The store keeps every row, so a row must not leave the ring before it is taken: when
a channel's unflushed rows fill its ring (a burst of more than ``capacity`` rows
between two flushes), they are copied out at once (:meth:`Unflushed.overflow`, one copy
per ``capacity`` rows) and the next take hands them over first. At most
:data:`MAX_OVERFLOW` rows per channel wait so (a flush that stalls for long): beyond
that the oldest are given up, counted in Dropped and said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from epics_collector.storage import Columns, concat

if TYPE_CHECKING:
    from epics_collector.collector._recorder import Channel, Recorder


MAX_OVERFLOW = 1_000_000  # rows per channel copied out of a full ring awaiting a take


class Unflushed:
    """The recorder's rows as its spill store takes and restores them (any thread)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        #: a spill store takes the rows: none may leave a ring untaken (see the module)
        self.kept = False
        self._overflow: dict[str, list[Columns]] = {}

    def overflow(self, channel: Channel) -> None:
        """The channel's unflushed rows fill its ring: copy them out (recorder's lock held)."""
        parts = self._overflow.setdefault(channel.alias, [])
        parts.append(channel.ring.columns(channel.unflushed))
        channel.unflushed = 0
        excess = sum(len(p) for p in parts) - MAX_OVERFLOW
        if excess > 0:
            rows = concat(*parts)
            self._overflow[channel.alias] = [rows.take(slice(excess, len(rows)))]
            self._recorder.gave_up(channel, excess)

    def forget(self) -> None:
        """Drop the rows copied out of full rings (a Clear; recorder's lock held)."""
        self._overflow.clear()

    def take_all(
        self, meta: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Columns], dict[str, Any]]:
        """Every channel's rows since the last take, and ``meta()``, at one moment."""
        with self._recorder.lock:
            taken = {}
            for channel in self._recorder.channels:
                newest = channel.ring.columns(channel.unflushed)
                early = self._overflow.pop(channel.alias, None)
                taken[channel.alias] = concat(*early, newest) if early else newest
                channel.unflushed = 0
            return taken, meta()

    def flushed(self, channel: Channel) -> Columns:
        """The channel's rows up to the last take (for compaction)."""
        with self._recorder.lock:
            rows = channel.ring.columns()
            keep = len(rows) - channel.unflushed
            return rows if channel.unflushed == 0 else rows.select(np.arange(len(rows)) < keep)

    def restore(self, channel: Channel, rows: Columns) -> None:
        """Put rows loaded from disk back (before recording starts), in time order.

        Rows that an earlier version stored out of order are sorted (stably) with what
        the ring holds, so reads never see time going back.
        """
        with self._recorder.lock:
            if channel.kind == "auto" and len(rows):  # (a description without it)
                channel.resolve(_kind_of(rows), self._recorder.config)
            ring = channel.ring
            if len(rows) and (rows.time[0] < ring.newest or np.any(np.diff(rows.time) < 0)):
                merged = concat(ring.columns(), rows) if len(ring) else rows
                order = np.argsort(merged.time, kind="stable")
                ring.clear()
                rows = merged.take(order)
            ring.extend(rows)
            channel.changed = True


def _kind_of(rows: Columns) -> str:
    """The kind whose rows these are (an ``auto`` channel's, restored from disk)."""
    if rows.value.dtype == object:
        return "string"
    return {1: "number", 2: "waveform"}.get(rows.value.ndim, "image")
