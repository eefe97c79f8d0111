"""A collector's publishing: its counters, its channels' history PVs, the Channels table.

The event loop owns it (:class:`Publisher` runs there, ``publish_rate`` times a second):
it takes the changed channels from the recorder, posts the PVs clients watch, and says in
Message which channels lost updates or never connected, once per change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._pvs import ChannelPvFamily
from epics_collector.collector._recorder import Recorder
from epics_collector.core import AttrR, Severity, listed

log = logging.getLogger(__name__)
Report = Callable[[str, Severity], None]


@dataclass(frozen=True)
class Counters:
    """The device's PVs a publisher keeps current."""

    count: AttrR[Any]
    excluded: AttrR[Any]
    dropped: AttrR[Any]
    overruns: AttrR[Any]
    channel_table: AttrR[Any]


class Publisher:
    """Keeps a collector's PVs current from its recorder (event loop)."""

    def __init__(
        self,
        config: CollectorConfig,
        recorder: Recorder,
        channel_pvs: ChannelPvFamily,
        pvs: Counters,
        report: Report,
    ) -> None:
        self.config, self.recorder, self.channel_pvs = config, recorder, channel_pvs
        self.pvs, self.report = pvs, report
        self._reported_missing: set[str] = set()
        #: alias -> (overruns, missing) last reported in Message
        self._reported_losses: dict[str, tuple[int, int]] = {}
        pvs.channel_table.refresh = self.publish_channel_table

    def publish(self) -> None:
        """Post what changed since the last call."""
        changed = self.recorder.take_changed()
        for channel_pvs in self.channel_pvs.live():  # only channels a client uses have PVs
            if channel_pvs.channel.alias not in changed or channel_pvs.stale:
                continue  # (stale: an auto channel found not to be a number; being reset)
            if channel_pvs.connected.value != channel_pvs.channel.connected:
                channel_pvs.connected.set(channel_pvs.channel.connected)
            if channel_pvs.watched:
                channel_pvs.publish()
        self.pvs.count.set(self.recorder.count)
        self.pvs.excluded.set(self.recorder.excluded)
        for attr, total in (
            (self.pvs.dropped, self.recorder.dropped),
            (self.pvs.overruns, self.recorder.overruns),
        ):
            attr.set(total, severity=Severity.MINOR if total else Severity.NO_ALARM)
        if changed:
            if self.pvs.channel_table.watched:
                self.publish_channel_table()
            self._report_losses()

    def cleared(self) -> None:
        """The history was cleared: losses are reported afresh."""
        self._reported_losses.clear()

    def _report_losses(self) -> None:
        """Say in Message which channels lost updates since the last report."""
        lines = []
        for channel in self.recorder.live:
            now = (channel.overruns, channel.missing)
            before = self._reported_losses.get(channel.alias, (0, 0))
            if now == before:
                continue
            self._reported_losses[channel.alias] = now
            if now[0] > before[0]:
                lines.append(
                    f"{channel.alias}: its monitor queue filled "
                    f"({self.config.queue_size_for(channel.config)} "
                    f"updates, {now[0]} times), updates may have been squashed: raise "
                    "queue_size or lower the source's rate"
                )
            if now[1] > before[1]:
                lines.append(
                    f"{channel.alias}: {now[1]} updates missing from the source's sequence "
                    "numbers (counted in Dropped)"
                )
        if lines:
            self.report(listed(lines, "; "), Severity.MINOR)

    def publish_channel_table(self) -> None:
        """Post the Channels table (on demand: when opened, and while watched)."""
        channels = self.recorder.live
        latest = [ch.latest.timestamp if ch.latest else np.nan for ch in channels]
        self.pvs.channel_table.set(
            {
                "alias": [ch.alias for ch in channels],
                "pv": [ch.config.pv for ch in channels],
                "connected": [ch.connected for ch in channels],
                "count": [ch.ring.total for ch in channels],
                "last_update": latest,
                "excluded": [ch.reducer.excluded for ch in channels],
                "overruns": [ch.overruns for ch in channels],
                "dropped": [ch.dropped for ch in channels],
                "late": [ch.late for ch in channels],
                "bad_time": [ch.bad_time for ch in channels],
                "kind": [ch.kind for ch in channels],
                "since": [ch.since for ch in channels],
                "connects": [ch.connects for ch in channels],
                "reason": [ch.reason for ch in channels],
                "added": [ch.added for ch in channels],
                "period": [_period(ch.config.compress.period) for ch in channels],
            }
        )

    async def run(self) -> None:
        """Publish ``publish_rate`` times a second until cancelled; failures are reported."""
        period = 1.0 / self.config.publish_rate
        while True:
            try:
                self.recorder.release_merged(time.time())
                self.publish()
                self._report_missing()
            except Exception as error:  # publishing must go on; the recording is unaffected
                log.exception("publishing failed")
                self.report(f"publishing failed: {error}", Severity.MAJOR)
            await asyncio.sleep(period)

    def _report_missing(self) -> None:
        now = time.monotonic()
        missing = {
            f"{ch.alias} ({ch.config.pv})"
            for ch in self.recorder.live
            if not ch.ever_connected and now - ch.created > self.config.connect_timeout
        }
        if missing and missing != self._reported_missing:
            self.report(f"not connected: {listed(sorted(missing))}", Severity.MINOR)
        self._reported_missing = missing


def _period(period: float | None) -> float:
    return float("nan") if period is None else period
