"""The recording logic: channels, rings, counts, limits. Thread-safe, transport-free.

Source updates arrive on transport threads (p4p's worker) or on the event loop (CA);
everything that touches rings or counters holds one lock. Events the device must act
on (a full ring in fill mode, the sample limit, a connection change) are reported through
``notify``, which may be called on any thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from epics_collector.collector import _texts
from epics_collector.collector._coerce import Coerce, coercer, kind_of
from epics_collector.collector._config import ChannelConfig, CollectorConfig
from epics_collector.collector._history import History
from epics_collector.collector._merge import Merger
from epics_collector.collector._reduce import Reducer, Row
from epics_collector.collector._unflushed import Unflushed
from epics_collector.core import Severity, Status, Update
from epics_collector.storage import Ring

log = logging.getLogger(__name__)


EPICS_EPOCH = 631152000.0  # 1990-01-01: EPICS time 0; a source time at or before it is none


class Event(StrEnum):
    """What the recorder tells the device."""

    FULL = "full"
    SAMPLE_LIMIT = "sample limit"
    CONNECTION = "connection"
    BAD_VALUE = "bad value"
    KIND = "kind"  # an auto channel's kind was found


@dataclass
class Channel:
    """One recorded PV and its history. Implements the source listener protocol."""

    config: ChannelConfig
    ring: Ring
    recorder: Recorder
    connected: bool = False
    ever_connected: bool = False
    reason: str = "connecting"  # the source's word on its last connection change
    since: float = float("nan")  # POSIX time of the last connection change (none: NaN)
    connects: int = 0  # times the source connected (a reconnection counts again)
    added: float = field(default_factory=time.time)  # POSIX time the channel was made
    removed: float = math.nan  # POSIX time of its Remove (NaN: live); its rows stay
    paused: bool = False  # removed as a pause (archiving resumes with an Add)
    latest: Update | None = None
    changed: bool = True
    problem: str = ""
    bad_time: int = 0  # updates with no valid source time (EPICS time 0): not recorded
    stamped_here: bool = False  # updates with no timestamp at all (0) were seen
    in_gap: bool = False  # the newest row is a gap row
    overruns: int = 0  # times the source's monitor queue filled while recording
    dropped: int = 0  # updates known to be lost (sequence gaps, bad values, full)
    missing: int = 0  # of which missing from the source's sequence numbers
    failures: int = 0  # updates whose recording raised (a bug or an impossible config)
    late: int = 0  # source updates older than the newest row: not recorded (in Dropped)
    unflushed: int = 0  # rows recorded but not yet handed to the spill file
    created: float = field(default_factory=time.monotonic)
    kind: str = field(init=False)  # config.kind, or the one an ``auto`` channel found
    reducer: Reducer = field(init=False)
    coerce: Coerce = field(init=False)  # a source value -> a row's value (by kind)
    merger: Merger | None = field(init=False)  # with ``merge``: the reorder buffer
    sources_connected: list[bool] = field(init=False)  # pv, then each merged PV

    def __post_init__(self) -> None:
        self.kind = self.config.kind
        self.reducer = Reducer(self.config.compress, self.config.include, self.config.deadband)
        self.coerce = coercer(self.kind, self.config, self.ring)
        self.merger = Merger(self.config.merge_window) if self.config.merge else None
        self.sources_connected = [False] * (1 + len(self.config.merge))

    def resolve(self, kind: str, collector: CollectorConfig) -> None:
        """An ``auto`` channel's kind is ``kind`` from now on (under the recorder's lock).

        ``kind`` says so to every reader, and its ring and conversion become that
        kind's; it has no rows yet. Its config stays as given (``auto``: the Config PV
        and a restore find the kind again): a copy of it per channel cost 0.7 KB each.
        """
        self.kind = kind
        if not len(self.ring):
            self.ring = _ring(collector, self.config, kind)
        self.coerce = coercer(kind, self.config, self.ring)
        self.changed = True

    def clear(self) -> None:
        """Forget the rows and the counters (under the recorder's lock)."""
        self.ring.clear()
        self.reducer = Reducer(self.config.compress, self.config.include, self.config.deadband)
        if self.merger is not None:
            self.merger.reset()
        self.unflushed = 0
        self.overruns = self.dropped = self.missing = self.failures = 0
        self.late = self.bad_time = 0
        # what was said once is said again after a Clear (time going back, no
        # timestamps): a new history, new news
        self.stamped_here, self.problem, self.in_gap = False, "", False
        self.changed = True

    def stamp_here(self) -> float:
        """The arrival time, for a source that sends no timestamp (said once)."""
        if not self.stamped_here:
            self.stamped_here = True
            self.problem = _texts.no_timestamps(self.alias)
            self.recorder.notify(Event.BAD_VALUE, self)
        return time.time()

    def merged_source(self, index: int) -> MergedSource:
        """The listener of merged PV ``index`` (0-based in ``merge``)."""
        return MergedSource(self, index + 1)

    @property
    def alias(self) -> str:
        """The channel's alias."""
        return self.config.alias

    def on_update(self, update: Update) -> None:
        """A source update (any thread)."""
        self.recorder.record(self, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        """A source connection change (any thread)."""
        self.recorder.connection(self, connected, reason)

    def on_loss(self, missing: int | None) -> None:
        """Updates lost before they reached us (any thread)."""
        self.recorder.loss(self, missing)


@dataclass
class MergedSource:
    """The listener of one more PV of a merged channel."""

    channel: Channel
    source: int  # index in the channel's sources_connected

    def on_update(self, update: Update) -> None:
        """A source update (any thread)."""
        self.channel.recorder.record(self.channel, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        """A source connection change (any thread)."""
        pv = self.channel.config.merge[self.source - 1]
        self.channel.recorder.connection(self.channel, connected, f"{pv} {reason}", self.source)

    def on_loss(self, missing: int | None) -> None:
        """Updates lost before they reached us (any thread)."""
        self.channel.recorder.loss(self.channel, missing)


def _ring(config: CollectorConfig, channel: ChannelConfig, kind: str | None = None) -> Ring:
    """A ring for ``kind`` (the config's): strings, arrays (shaped later), or floats."""
    overwrite = config.mode == "ring"
    kind = kind or channel.kind
    if kind in ("waveform", "image", "auto"):  # shape and dtype from the first update
        return Ring(
            config.capacity, overwrite=overwrite, row_shape=None, max_bytes=channel.max_bytes
        )
    dtype = object if kind == "string" else np.float64
    return Ring(config.capacity, dtype, overwrite=overwrite)


def _gap_value(channel: Channel) -> Any:
    """NaN for numbers, "" for strings, a NaN- (or zero-) filled row for arrays."""
    kind, ring = channel.kind, channel.ring
    if kind == "number":
        return math.nan
    if kind == "string":
        return ""
    fill = np.nan if ring.dtype.kind == "f" else 0
    return np.full(ring.row_shape or (0,), fill, ring.dtype)


class Recorder:
    """Appends source updates to per-channel rings while recording."""

    def __init__(self, config: CollectorConfig, notify: Callable[[Event, Channel], None]):
        self.config = config
        self.notify = notify
        self.lock = threading.Lock()
        self.recording = False
        self.count = 0
        self.dropped = 0
        self.overruns = 0
        self.arrivals = 0  # source updates received (readers give way while it grows fast)
        self.channels = [Channel(c, _ring(config, c), self) for c in config.channels]
        self.connected = 0  # channels connected now (kept by connection changes)
        self.removed = 0  # channels removed (kept with their rows)
        #: The channels by alias (recorded and pushed).
        self.by_alias = {channel.alias: channel for channel in self.channels}
        #: The face readers see (read-only), and the one the spill store sees.
        self.history = History(self)
        self.unflushed = Unflushed(self)

    # transport side ---------------------------------------------------------------------

    @property
    def excluded(self) -> int:
        """Values outside the channels' include ranges, not recorded."""
        return sum(ch.reducer.excluded for ch in self.channels)

    def record(self, channel: Channel, update: Update) -> None:
        """Store ``update`` if recording (and remember it as the channel's latest)."""
        with self.lock:
            if channel.removed == channel.removed:  # (an update in flight at its Remove)
                return
            self.arrivals += 1
            channel.latest = update
            if channel.kind == "auto":
                self._found_kind(channel, update.value)
            if not self.recording:
                return
            try:
                if channel.merger is None:
                    self._reduce(channel, update)
                    return
                for ready in channel.merger.push(update):
                    self._reduce(channel, ready)
            except Exception as error:  # never let one channel stop the others
                self._failed(channel, error)

    def _found_kind(self, channel: Channel, value: Any) -> None:
        """An ``auto`` channel's first update of a kind that records it: its kind."""
        kind = kind_of(value)
        if kind is not None:
            channel.resolve(kind, self.config)
            self.notify(Event.KIND, channel)

    def _failed(self, channel: Channel, error: Exception) -> None:
        """Recording an update of ``channel`` raised: count it, say so, go on."""
        self.dropped += 1
        channel.dropped += 1
        channel.failures += 1
        if channel.failures == 1:  # the traceback once; the count says the rest
            log.error("%s: recording an update failed", channel.alias, exc_info=error)
        channel.problem = _texts.failed(channel.alias, channel.failures, error)
        channel.changed = True
        self.notify(Event.BAD_VALUE, channel)

    def release_merged(self, now: float) -> None:
        """Record merged updates that waited their window (the publisher calls this)."""
        with self.lock:
            if not self.recording:
                return
            for channel in self.channels:
                if channel.merger is not None and len(channel.merger):
                    for ready in channel.merger.release(now):
                        self._reduce(channel, ready)

    def _flush_merged(self, channel: Channel) -> None:
        if channel.merger is not None:
            for ready in channel.merger.flush():
                self._reduce(channel, ready)

    def connection(self, channel: Channel, connected: bool, reason: str, source: int = 0) -> None:
        """Track connection; a disconnect while recording leaves a gap row."""
        with self.lock:
            if channel.removed == channel.removed:
                return
            was = channel.sources_connected[source]
            channel.sources_connected[source] = connected
            if not connected and was and self.recording and channel.ring.sized:
                self._flush_merged(channel)  # the gap comes after everything before it
                gap = _gap_value(channel)
                channel.reducer.reset()
                row = (time.time(), gap, Severity.INVALID, Status.CLIENT)
                self._append(channel, row, gap=True)
            connected = all(channel.sources_connected)
            if connected != channel.connected:
                channel.since = time.time()
                channel.connects += int(connected)
            self._set_connected(channel, connected)
            channel.ever_connected |= connected
            channel.reason = reason
            channel.changed = True
        self.notify(Event.CONNECTION, channel)

    def _set_connected(self, channel: Channel, connected: bool) -> None:
        self.connected += int(connected) - int(channel.connected)
        channel.connected = connected

    def mark_connected(self, channel: Channel) -> None:
        """A channel without a source (pushed) is connected from the start."""
        with self.lock:
            self._set_connected(channel, True)
            channel.ever_connected = True
            channel.since, channel.connects = time.time(), 1

    def loss(self, channel: Channel, missing: int | None) -> None:
        """Count updates lost at the source while recording (see ``SourceListener``)."""
        with self.lock:
            if not self.recording:
                return
            if missing is None:
                channel.overruns += 1
                self.overruns += 1
            else:
                channel.missing += missing
                channel.dropped += missing
                self.dropped += missing
            channel.changed = True

    def _reduce(self, channel: Channel, update: Update) -> None:
        try:
            value = channel.coerce(update.value)
        except (TypeError, ValueError) as error:
            self.dropped += 1
            channel.dropped += 1
            channel.problem = _texts.wrong_kind(channel.alias, update.value, channel.kind, error)
            self.notify(Event.BAD_VALUE, channel)
            return
        stamp = update.timestamp
        if stamp == 0.0:  # a server that sends no timestamps at all: stamp on arrival
            stamp = channel.stamp_here()
        elif not EPICS_EPOCH < stamp < math.inf:  # never processed (UDF), or nonsense
            self._bad_time(channel, stamp)
            return
        row: Row | None = (stamp, value, update.severity, update.status)
        if not channel.reducer.passes_everything:
            row = channel.reducer.push(row)
        if row is not None:
            # the exact stamp, where the row is this update's (a reducer may give another)
            exact = update.ns if row[0] == update.timestamp else None
            self._append(channel, row, ns=exact)

    def _bad_time(self, channel: Channel, stamp: float) -> None:
        """An update with no valid source time: counted, not recorded, and a gap."""
        channel.bad_time += 1
        if len(channel.ring) and not channel.in_gap:  # (no row yet: nothing to break)
            channel.reducer.reset()
            gap = (time.time(), _gap_value(channel), Severity.INVALID, Status.CLIENT)
            self._append(channel, gap, gap=True)
        first = channel.bad_time == 1
        self._not_recorded(channel, _texts.bad_time(channel.alias, stamp) if first else None)

    def _late(self, channel: Channel, stamp: float) -> None:
        """A source update older than the channel's newest row: counted, not recorded."""
        channel.late += 1
        first = channel.late == 1
        text = _texts.late(channel.alias, stamp, channel.ring.newest) if first else None
        self._not_recorded(channel, text)

    def gave_up(self, channel: Channel, rows: int) -> None:
        """Recorded rows that could not wait longer for the spill store: counted, said."""
        self.dropped += rows
        channel.dropped += rows
        channel.changed = True
        channel.problem = _texts.gave_up(channel.alias, rows)
        self.notify(Event.BAD_VALUE, channel)

    def _not_recorded(self, channel: Channel, first: str | None) -> None:
        """An update counted in Dropped, not recorded; ``first``: the text, said once."""
        self.dropped += 1
        channel.dropped += 1
        channel.changed = True
        if first is not None:
            channel.problem = first
            self.notify(Event.BAD_VALUE, channel)

    def _append(
        self, channel: Channel, row: Row, *, gap: bool = False, ns: int | None = None
    ) -> None:
        """Append a row in time order; a gap row older than the newest goes just after it.

        ``ns`` is the row's exact timestamp in nanoseconds, where known.
        """
        if row[0] < channel.ring.newest:
            if not gap:
                self._late(channel, row[0])
                return
            row = (float(np.nextafter(channel.ring.newest, np.inf)), *row[1:])
        if not channel.ring.append(*row, ns=ns):
            self.dropped += 1
            channel.dropped += 1
            self._stop_locked(full=channel)
            self.notify(Event.FULL, channel)
            return
        self.count += 1
        channel.unflushed += 1
        if channel.unflushed >= channel.ring.capacity and self.unflushed.kept:
            self.unflushed.overflow(channel)  # (a burst: the store takes every row)
        channel.changed = True
        channel.in_gap = gap
        limit = self.config.limits.samples
        if limit is not None and self.count >= limit:
            self.recording = False
            self.notify(Event.SAMPLE_LIMIT, channel)

    # device side ------------------------------------------------------------------------

    def add_channel(self, config: ChannelConfig) -> Channel:
        """A new channel (its source, if any, is subscribed by the caller; or pushed)."""
        channel = Channel(config, _ring(self.config, config), self)
        with self.lock:
            self.channels.append(channel)
            self.by_alias[channel.alias] = channel
        return channel

    def drop_channel(self, channel: Channel) -> None:
        """Forget a channel just added (before anything was recorded into it)."""
        with self.lock:
            self.channels.remove(channel)
            del self.by_alias[channel.alias]

    def forget_channel(self, channel: Channel) -> None:
        """Forget a removed channel and its rows (a purge; the store's are the caller's)."""
        with self.lock:
            self.channels.remove(channel)
            del self.by_alias[channel.alias]
            self.removed -= 1

    def remove_channel(self, channel: Channel, when: float) -> None:
        """Record ``channel`` no more (its subscription is closed by the caller).

        Its rows stay: read, flushed, exported and kept on disk with the recording.
        """
        with self.lock:
            if self.recording:  # its pending periodic or merged rows first
                self._flush_merged(channel)
                row = channel.reducer.flush()
                if row is not None:
                    self._append(channel, row)
            channel.removed = when
            self._set_connected(channel, False)
            channel.changed = True
            self.removed += 1

    def revive(self, channel: Channel) -> None:
        """A removed channel is recorded again (added back with the same source)."""
        with self.lock:
            channel.removed, channel.paused = math.nan, False
            self.removed -= 1
            channel.sources_connected = [False] * len(channel.sources_connected)
            channel.ever_connected, channel.reason = False, "connecting"
            channel.changed = True

    @property
    def live(self) -> list[Channel]:
        """The channels recorded now (not removed)."""
        if not self.removed:
            return self.channels
        return [ch for ch in self.channels if ch.removed != ch.removed]

    def push(self, channel: Channel, update: Update) -> None:
        """Record a sample a client pushed, recording or not.

        Raises ValueError for a sample older than the channel's newest row: pushes come
        in time order (the same time again is taken), so the history stays ordered.
        """
        with self.lock:
            newest = channel.ring.newest
            if update.timestamp < newest:
                raise ValueError(
                    f"time {update.timestamp:.6f} is before {channel.alias}'s newest row "
                    f"({newest:.6f}): pushes must come in time order"
                )
            channel.latest = update
            if channel.kind == "auto":
                self._found_kind(channel, update.value)
            self._reduce(channel, update)

    def start(self) -> None:
        """Record from now on, beginning with each channel's current value if newer.

        Channels with N-to-1 or periodic compression start with the first update after
        Start: a stale current value would distort the first group.
        """
        with self.lock:
            self.recording = True
            for channel in self.live:
                channel.reducer.reset()
                if channel.merger is not None:
                    channel.merger.reset()
                latest = channel.latest
                if latest is None or not self.recording or not channel.reducer.keeps_every_row:
                    continue
                newest = channel.ring.columns(1).time
                if len(newest) == 0 or latest.timestamp > newest[0]:
                    self._reduce(channel, latest)

    def stop(self) -> None:
        """Record nothing more (a pending periodic row is recorded first)."""
        with self.lock:
            self._stop_locked()

    def _stop_locked(self, full: Channel | None = None) -> None:
        """Record each channel's pending rows (not into ``full``), then nothing more.

        Under the lock. A stop because one channel is full (fill mode) still records
        the other channels' pending periodic and merged rows.
        """
        if not self.recording:
            return
        self.recording = False
        for channel in self.live:
            if channel is full:
                continue
            self._flush_merged(channel)
            row = channel.reducer.flush()
            if row is not None:
                self._append(channel, row)

    def clear(self) -> None:
        """Forget every recorded row and the counters."""
        with self.lock:
            for channel in self.channels:
                channel.clear()
            self.unflushed.forget()
            self.count = 0
            self.dropped = 0
            self.overruns = 0

    def count_dropped(self, rows: int) -> None:
        """Rows lost after recording (not written to disk): counted in Dropped."""
        with self.lock:
            self.dropped += rows

    def take_changed(self) -> set[str]:
        """Aliases of the channels changed since the last call (their flags cleared)."""
        with self.lock:
            changed = {ch.alias for ch in self.channels if ch.changed}
            for channel in self.channels:
                channel.changed = False
        return changed

    def outage(self, since: float) -> None:
        """Nothing was recorded from ``since`` (a crash) until now: a gap row per channel.

        The row goes after the channel's newest one, so the history shows a break where
        the process was down instead of a line drawn across the outage.
        """
        with self.lock:
            for channel in self.live:
                if not channel.ring.sized or channel.config.pv.startswith("push:"):
                    continue  # nothing recorded yet, or pushed: no source was lost
                newest = channel.ring.columns(1).time
                stamp = max(since, float(newest[0]) + 1e-6) if len(newest) else since
                gap = (stamp, _gap_value(channel), Severity.INVALID, Status.CLIENT)
                channel.reducer.reset()
                self._append(channel, gap, gap=True)
