"""Conditions on PVs driving a collector: trigger windows (snapshots) and start/stop.

A trigger fires only while the collector records. Each firing at time ``t`` (the trigger
PV's timestamp, or now for a ``Trigger`` put) becomes snapshot ``id``: ``post`` seconds
later (plus a short margin for late updates) the rows of every channel with
``t - pre <= time <= t + post`` are frozen. Firings inside another's window make
snapshots of their own (windows may overlap). The newest ``max_snapshots`` are kept.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from epics_collector.collector._conditions import Condition, Trigger
from epics_collector.collector._history import History
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._snapshots import SNAPSHOT_COLUMNS, Snapshot, SnapshotStore, table
from epics_collector.collector._start_stop import StartStop
from epics_collector.core import (
    AttrR,
    Part,
    Severity,
    Sources,
    Subscription,
    Table,
    Update,
    command,
)

FREEZE_MARGIN = 0.3  # seconds: updates stamped inside the window may arrive a little later


class ConditionInput:
    """A source listener that hands a condition PV's values to the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_value: Callable[[Any, float], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.loop, self.on_value, self.on_lost = loop, on_value, on_lost

    def on_update(self, update: Update) -> None:
        """Any thread."""
        self.loop.call_soon_threadsafe(self.on_value, update.value, update.timestamp)

    def on_connection(self, connected: bool, reason: str) -> None:
        """Any thread."""
        if not connected:
            self.loop.call_soon_threadsafe(self.on_lost, reason)

    def on_loss(self, missing: int | None) -> None:
        """Any thread: condition updates were lost (a firing may have been missed)."""
        what = "its monitor queue filled" if missing is None else f"{missing} updates missing"
        self.loop.call_soon_threadsafe(self.on_lost, f"lost updates ({what})")


class TriggerWindows:
    """Fires on the trigger condition, freezes windows, serves and stores snapshots."""

    def __init__(
        self,
        config: Trigger,
        history: History,
        report: Callable[[str, Severity], None],
        table_pv: AttrR[Any],
        store: SnapshotStore | None,
    ) -> None:
        self.config, self.history, self.store = config, history, store
        self.report, self.table_pv = report, table_pv
        self.condition = Condition(config.when)
        self.snapshots: list[Snapshot] = []
        self._pending: dict[int, tuple[asyncio.TimerHandle, float]] = {}
        self._next_id = 1

    def restore(self) -> None:
        """Serve the snapshots stored by an earlier run."""
        if self.store is None:
            return
        texts = {c.alias for c in self.history.channels if c.kind == "string"}
        for snapshot in self.store.load(texts):
            self._keep(snapshot)
        self._publish_table()

    def on_value(self, value: Any, timestamp: float) -> None:
        """A trigger PV update (on the loop)."""
        try:
            fires = self.condition.update(value)
        except (TypeError, ValueError) as error:
            self.report(f"trigger {self.config.pv}: cannot test {value!r}: {error}", Severity.MINOR)
            return
        if fires:
            self.fire(timestamp)

    def on_lost(self, reason: str) -> None:
        """The trigger PV disconnected (recording goes on)."""
        self.report(f"trigger PV {self.config.pv} {reason}", Severity.MINOR)

    def fire(self, at: float) -> int:
        """Start snapshot of the window around ``at``; returns its id."""
        if not self.history.recording:
            raise ValueError("not recording: trigger windows are cut from a running recording")
        snapshot_id, self._next_id = self._next_id, self._next_id + 1
        delay = max(0.0, at + self.config.post - time.time()) + FREEZE_MARGIN
        handle = asyncio.get_running_loop().call_later(delay, self._freeze, snapshot_id, at)
        self._pending[snapshot_id] = (handle, at)
        self.report(
            f"trigger {snapshot_id} at {at:.3f}: freezing in {delay:.1f} s", Severity.NO_ALARM
        )
        return snapshot_id

    def _freeze(self, snapshot_id: int, at: float) -> None:
        self._pending.pop(snapshot_id, None)
        start, end = at - self.config.pre, at + self.config.post
        rows, complete = {}, True
        for channel in self.history.channels:  # only the window is read, never the ring
            rows[channel.alias], held = self.history.window(channel, start, end)
            complete = complete and held
        snapshot = Snapshot(snapshot_id, at, start, end, rows, complete)
        if self.store is not None:
            self.store.save(snapshot)
        self._keep(snapshot)
        self._publish_table()
        if not complete:
            self.report(
                f"snapshot {snapshot_id} is incomplete: the ring no longer held {start:.3f}; "
                "raise capacity",
                Severity.MINOR,
            )

    def _keep(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` (served by :class:`SnapshotPvFamily`), dropping the oldest."""
        self.snapshots.append(snapshot)
        self._next_id = max(self._next_id, snapshot.id + 1)
        while len(self.snapshots) > self.config.max_snapshots:
            self._discard(self.snapshots.pop(0))

    def _discard(self, snapshot: Snapshot) -> None:
        if self.store is not None:
            self.store.delete(snapshot.id)

    def _publish_table(self) -> None:
        self.table_pv.set(table(self.snapshots))

    def close(self) -> None:
        """Freeze pending windows now (the device stops)."""
        for snapshot_id, (handle, at) in list(self._pending.items()):
            handle.cancel()
            self._freeze(snapshot_id, at)


def subscribe_conditions(
    sources: Sources,
    loop: asyncio.AbstractEventLoop,
    windows: TriggerWindows | None,
    start_stop: StartStop,
) -> list[Subscription]:
    """Subscribe to the trigger PV and the start/stop condition PVs.

    Their values go to the event loop; a lost condition PV is said, recording goes on.
    """
    inputs: list[tuple[str, Callable[[Any, float], None], Callable[[str], None]]] = []
    if windows is not None:
        windows.restore()
        pv = windows.config.pv
        inputs.append((pv, windows.on_value, functools.partial(start_stop.lost, "trigger", pv)))
    for role, pv in start_stop.inputs():
        on_value = functools.partial(start_stop.on_value, role)
        inputs.append((pv, on_value, functools.partial(start_stop.lost, role, pv)))
    return [
        sources.subscribe(pv, ConditionInput(loop, on_value, on_lost), queue_size=1000)
        for pv, on_value, on_lost in inputs
    ]


class Triggering(Part):
    """The collector's part that serves Snapshots and Trigger (windows if configured)."""

    snapshot_table = AttrR(
        Table(columns=SNAPSHOT_COLUMNS),
        name=CollectorPv.SNAPSHOTS,
        description="Trigger snapshots: id, trigger time, start, end, samples, complete",
    )

    def __init__(
        self,
        config: Trigger | None,
        history: History,
        report: Callable[[str, Severity], None],
        store: SnapshotStore | None,
    ) -> None:
        """Snapshots are kept in ``store`` (None: in memory only)."""
        self.windows: TriggerWindows | None = None
        if config is not None:
            self.windows = TriggerWindows(config, history, report, self.snapshot_table, store)

    @command(name=CollectorPv.TRIGGER)
    async def trigger_now(self) -> None:
        """Freeze a trigger window around now (needs a trigger in the config)."""
        if self.windows is None:
            raise ValueError("no trigger configured: add trigger: {pv, when, pre, post}")
        self.windows.fire(time.time())
