"""The collector device: records many PVs on demand and serves their history as PVs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector._annotating import Annotating
from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._damage import Damage
from epics_collector.collector._editing import ChannelEditing, ChannelJournal
from epics_collector.collector._exporting import Exporting, gather
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._publisher import Counters, Publisher
from epics_collector.collector._push import Pushing
from epics_collector.collector._pvs import ChannelPvFamily
from epics_collector.collector._queries import Queries
from epics_collector.collector._recorder import Channel, Event, Recorder
from epics_collector.collector._retaining import Retaining
from epics_collector.collector._snapshot_pvs import SnapshotPvFamily
from epics_collector.collector._snapshots import SnapshotStore
from epics_collector.collector._spilling import Spill
from epics_collector.collector._start_stop import StartStop
from epics_collector.collector._subscribing import ChannelSubscriber
from epics_collector.collector._triggers import Triggering, subscribe_conditions
from epics_collector.core import (
    AttrR,
    Device,
    Int,
    Severity,
    Sources,
    Subscription,
    Table,
    command,
    listed,
    scan,
)
from epics_collector.storage import ExportData

log = logging.getLogger(__name__)


class CollectorStates(StrEnum):
    """States of a collector."""

    IDLE = "Idle"
    RECORDING = "Recording"
    STOPPED = "Stopped"
    FAULT = "Fault"


class Collector(Device[CollectorConfig]):
    """Records source PVs losslessly into per-channel rings; serves the history as PVs.

    What stays here is the state machine (Start, Stop, Clear, limits, the recorder's
    events) and the lifecycle; the rest are parts, each owning its PVs: damage to the
    history on disk, trigger snapshots, exports and uploads, queries, pushes and
    annotations.
    """

    config_model = CollectorConfig
    States = CollectorStates
    parts = (
        Damage,
        Triggering,
        Exporting,
        Queries,
        Pushing,
        Annotating,
        ChannelEditing,
        Retaining,
    )

    count = AttrR(
        Int(),
        name=CollectorPv.COUNT,
        description="Samples recorded in total (all channels, gap rows included)",
    )
    dropped = AttrR(
        Int(),
        name=CollectorPv.DROPPED,
        description="Updates known to be lost (MINOR alarm when > 0)",
    )
    overruns = AttrR(
        Int(),
        name=CollectorPv.OVERRUNS,
        description=(
            "Times a source's monitor queue filled while recording, so updates may have "
            "been squashed (MINOR alarm when > 0)"
        ),
    )
    excluded = AttrR(
        Int(),
        name=CollectorPv.EXCLUDED,
        description="Inputs outside channels' include limits, not recorded",
    )
    channel_table = AttrR(
        Table(
            columns={
                "alias": str,
                "pv": str,
                "connected": np.bool_,
                "count": np.int64,
                "last_update": np.float64,
                "excluded": np.int64,
                "overruns": np.int64,
                "dropped": np.int64,
                "late": np.int64,
                "bad_time": np.int64,
                "kind": str,
                "since": np.float64,
                "connects": np.int64,
                "reason": str,
                "added": np.float64,
                "period": np.float64,
            }
        ),
        name=CollectorPv.CHANNELS,
        description=(
            "One row per channel: alias, pv, connected, count (rows since Clear), "
            "last_update (source time of the newest update, POSIX s), excluded, overruns "
            "and dropped (per channel), of which late (source time went back) and "
            "bad_time (no valid source time, e.g. a record's UDF value after an IOC "
            "restart: not recorded, a gap instead), kind (number, string, waveform, image; "
            "auto until the source says), "
            "since (POSIX s of the last connection change; NaN: never connected), connects "
            "(times the source connected: reconnections count again), reason (the source's "
            "word on its last connection change), added (POSIX s the channel was made), period "
            "(seconds between rows of a periodic compress; NaN: rows follow the updates)"
        ),
    )

    def __init__(
        self,
        config: CollectorConfig | Mapping[str, Any],
        *,
        data_dir: Path | None = None,
        sources: Sources | None = None,
    ) -> None:
        """Check the config; make the recorder and each concern's owner (nothing runs yet).

        Each channel's PVs are made when a client asks (:class:`ChannelPvFamily`).
        """
        super().__init__(config, data_dir=data_dir, sources=sources)
        journal = ChannelJournal(self.data_dir)
        replayed = journal.replay(self.config)  # (the channels added and removed since)
        self.recorder = Recorder(self.config, self._recorder_event)
        self.channel_pvs = ChannelPvFamily(self.recorder.history, self.config.tail, self._prefix)
        self.add_family(self.channel_pvs)
        counters = Counters(
            self.count, self.excluded, self.dropped, self.overruns, self.channel_table
        )
        self.publisher = Publisher(
            self.config, self.recorder, self.channel_pvs, counters, self.report
        )
        self._subscriptions: list[Subscription] = []  # of the condition PVs
        self.subscriber: ChannelSubscriber | None = None  # the channels' (once started)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._duration_timer: asyncio.TimerHandle | None = None
        self._count_at_start = 0  # Count when recording last started
        self.damage = self.add_part(Damage(self.hold, self.release, self.report))
        self.spill: Spill | None = None
        if self.config.persist:
            self.spill = Spill(
                self.config,
                self.data_dir,
                self._prefix,
                self.recorder,
                self.report,
                self.damage.count,
            )
        self.retaining: Retaining | None = None
        if self.spill is not None:
            retaining = Retaining(
                self.config, self.recorder, self.spill.ledger, self.data_dir.name, self.report
            )
            self.retaining = self.add_part(retaining)
        store = SnapshotStore(self._spill_dir / "snapshots") if self.config.persist else None
        triggering = Triggering(self.config.trigger, self.recorder.history, self.report, store)
        self.triggers = self.add_part(triggering).windows
        if self.triggers is not None:
            windows = self.triggers
            self.add_family(SnapshotPvFamily(self.recorder.history, lambda: windows.snapshots))
        self.start_stop = StartStop(
            self.config.start_when,
            self.config.stop_when,
            start=self._start,
            stop=self._stop_for,
            recording=lambda: self.state.value == CollectorStates.RECORDING,
            report=self.report,
        )
        notes = self._spill_dir / "annotations.jsonl" if self.config.persist else None
        self.annotating = self.add_part(Annotating(notes))
        self.exporting = self.add_part(
            Exporting(self.config, self.data_dir, self._prefix, self._export_data, self.report)
        )
        self.queries = self.add_part(
            Queries(self.config, self.recorder.history, self.triggers, self.report)
        )
        self.pushing = self.add_part(
            Pushing(self.config, self.recorder, self._pushed_channel_added, self.report)
        )
        self.editing = self.add_part(
            ChannelEditing(
                self.config, self.recorder, journal, self._edited, self._purged, self.report
            )
        )
        self.editing.replayed(replayed)
        self._config_stale = bool(replayed.added or replayed.removed)
        self._served_config()

    def _prefix(self) -> str:
        return self.prefix

    def _export_data(self) -> ExportData:
        """What an export writes (readers of the rows, not copies: see :func:`gather`)."""
        notes = self.annotating.notes
        return gather(
            self.prefix, self.config_json.value, self.recorder.history, self.triggers, notes
        )

    def _pushed_channel_added(self) -> None:
        if self.spill is not None:  # (nothing on disk yet: the next flush writes it)
            self.spill.describe()

    def _edited(self, channel: Channel, added: bool) -> None:
        """A channel was added (or added back) or removed by an RPC (event loop).

        Its subscription opens or closes, a removed channel's PVs close; what is O(n) in
        the channels (the description on disk, the Config PV) follows at the next flush.
        """
        if self.subscriber is not None:
            if added:
                self.subscriber.add(channel)
            else:
                self.subscriber.remove(channel)
        if not added:  # (a Remove answers once Channels no longer lists it: O(n), rare)
            self.withdraw_family_pvs(self.channel_pvs.served(channel.alias))
            self.editing.publish()
            self.publisher.publish_channel_table()
        if self.spill is not None:
            self.spill.describe_later()
        self._config_stale = True
        verb = "added" if added else "removed"
        self.report(f"{channel.alias} ({channel.config.pv}) {verb}")

    async def _purged(self, channel: Channel) -> None:
        """Forget a removed channel and its rows, in memory and on disk."""

        def forget() -> None:
            self.recorder.forget_channel(channel)

        if self.spill is not None:
            await self.spill.purge(channel.alias, forget)
        else:
            forget()
        self.report(f"{channel.alias} ({channel.config.pv}) purged")

    def _served_config(self) -> None:
        """The Config PV: the channels recorded now (the config's, as added and removed)."""
        if self._config_stale:
            live = self.recorder.live
            config = self.config.model_copy(update={"channels": [ch.config for ch in live]})
            self.config_json.set(config.served_json())
            self._config_stale = False

    # commands -------------------------------------------------------------------------------

    @command(name=CollectorPv.START)
    async def start_recording(self) -> None:
        """Start (or continue) recording."""
        self._start()

    def _start(self) -> None:
        if self.state.value == CollectorStates.RECORDING:
            return
        limit = self.config.limits.samples
        if limit is not None and self.recorder.count >= limit:
            raise ValueError(f"the sample limit ({limit}) is reached: Clear first")
        if self.config.mode == "fill" and any(ch.ring.full for ch in self.recorder.channels):
            raise ValueError("a channel is full (fill mode): Clear first")
        self.recorder.start()
        self._count_at_start = self.recorder.count
        self.set_state(CollectorStates.RECORDING)
        self.report(f"recording {len(self.recorder.channels)} channels")
        if self.config.limits.duration is not None and self._loop is not None:
            self._duration_timer = self._loop.call_later(
                self.config.limits.duration, self._stop_for, "duration limit reached"
            )
        # A limit hit by the initial values (the sample limit, or a full channel in fill
        # mode) stopped the recorder: its event, queued on this loop, stops the run and
        # says which limit it was.

    @command(name=CollectorPv.STOP)
    async def stop_recording(self) -> None:
        """Stop recording; the history stays.

        After a run that recorded no new sample, a MINOR Message names the channels that
        never connected.
        """
        self._stop_for("stopped")

    @command(name=CollectorPv.CLEAR)
    async def clear_history(self) -> None:
        """Forget the recorded history and the counters."""
        if self.spill is not None:
            await self.spill.clear(self._forget)
        else:
            self._forget()
        if self.state.value != CollectorStates.RECORDING:
            self.set_state(CollectorStates.IDLE)
        self.report("history cleared")
        self.publisher.publish()

    def _forget(self) -> None:
        self.recorder.clear()
        self.publisher.cleared()
        self.damage.clear()

    def _stop_for(self, reason: str, severity: Severity = Severity.NO_ALARM) -> None:
        self.recorder.stop()
        if self._duration_timer is not None:
            self._duration_timer.cancel()
            self._duration_timer = None
        if self.state.value == CollectorStates.RECORDING:
            self.set_state(CollectorStates.STOPPED)
            if self.recorder.count == self._count_at_start:
                reason = _nothing_recorded(reason, self.recorder.channels)
                severity = max(severity, Severity.MINOR)
            self.report(f"{reason}: recorded {self.recorder.count} samples", severity)
        self.publisher.publish()

    # events from the recorder ---------------------------------------------------------------

    def _recorder_event(self, event: Event, channel: Channel) -> None:
        """The recorder saw ``event`` (the sources' drain thread): the loop handles it."""
        self.call_soon(self._on_event, event, channel)

    def _on_event(self, event: Event, channel: Channel) -> None:
        if event == Event.FULL:
            capacity = self.config.capacity
            self._stop_for(
                f"{channel.alias} is full ({capacity} samples, fill mode)", Severity.MINOR
            )
        elif event == Event.SAMPLE_LIMIT:
            self._stop_for(f"sample limit of {self.config.limits.samples} reached")
        elif event == Event.BAD_VALUE:
            self.report(channel.problem, Severity.MINOR)
        elif event == Event.KIND:  # an auto channel's kind, from its source (O(1): 100k)
            log.debug("%s: kind %s (from its source)", channel.alias, channel.kind)
            self.withdraw_family_pvs(self.channel_pvs.reset(channel.alias))
            if self.spill is not None:
                self.spill.describe_later()  # (the whole description: at the next flush)
        elif not channel.connected:
            self.report(f"{channel.alias} ({channel.config.pv}) {channel.reason}", Severity.MINOR)
        else:
            if self.subscriber is not None:
                self.subscriber.connected()  # the next batch of subscriptions may be due
            live = len(self.recorder.channels) - self.recorder.removed
            if self.recorder.connected == live:  # O(1): 100k events
                self.report("all channels connected")

    # the history on disk ----------------------------------------------------------------------

    @property
    def _spill_dir(self) -> Path:
        return self.data_dir / "spill"

    @scan(0.5)
    async def flush(self) -> None:
        """Spill newly recorded rows to disk (persist: true), at least every second.

        The writes run in an executor: the event loop keeps serving PVs meanwhile (the
        recorder's lock guards the rows taken). A failed write keeps its rows for the
        next flush; see :class:`SpillLedger`.
        """
        if self.spill is not None:
            await self.spill.flush(self.pushing.kinds)
        self._served_config()

    # lifecycle ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Reload spilled data, subscribe to every source, start publishing."""
        self._loop = asyncio.get_running_loop()
        if self.sources is None:
            raise RuntimeError("no source transport: run the collector with sources")
        resume = False if self.spill is None else self.spill.load(self.pushing.add_channel)
        if self.spill is not None:
            self.spill.describe()
        self.subscriber = ChannelSubscriber(
            self.sources,
            self.recorder,
            lambda ch: self.config.queue_size_for(ch.config),
            self.fault,
        )
        self.subscriber.start()
        self._subscriptions = subscribe_conditions(
            self.sources, self._loop, self.triggers, self.start_stop
        )
        self._publishing = asyncio.create_task(self.publisher.run(), name="publish")
        if resume or self.config.autostart:
            await self.start_recording.method(self)

    async def on_stop(self) -> None:
        """Close the sources, flush to disk, stop publishing."""
        if self.subscriber is not None:
            await self.subscriber.close()
        for subscription in self._subscriptions:  # the condition PVs'
            subscription.close()
        self._subscriptions = []
        if self.sources is not None:
            self.sources.detach()
        if self._duration_timer is not None:
            self._duration_timer.cancel()
        if self.triggers is not None:
            self.triggers.close()
        await self.exporting.close()
        if self.retaining is not None:
            await self.retaining.close()  # (after its transaction: before the store closes)
        await self.flush.method(self)
        if self.spill is not None:
            self.spill.close()
        self.queries.close()
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing


def _nothing_recorded(reason: str, channels: Sequence[Channel]) -> str:
    """Why a run recorded no sample, for the Message (a MINOR alarm: worth a look)."""
    never = [f"{ch.alias} ({ch.config.pv})" for ch in channels if not ch.ever_connected]
    if never:
        names = listed(never)
        return f"{reason} with no new sample: never connected: {names} (check the PV names)"
    return f"{reason} with no new sample: no channel sent an update while recording"
