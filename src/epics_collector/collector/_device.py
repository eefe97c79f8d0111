"""The collector device: records many PVs on demand and serves their history as PVs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector._config import ChannelConfig, CollectorConfig
from epics_collector.collector._exporting import Annotations, gather
from epics_collector.collector._publisher import Counters, Publisher
from epics_collector.collector._push import MAX_PUSHED_CHANNELS, parse_push
from epics_collector.collector._pvs import ChannelPvFamily
from epics_collector.collector._recorder import Channel, Event, Recorder
from epics_collector.collector._snapshot_pvs import SnapshotPvFamily
from epics_collector.collector._snapshots import SNAPSHOT_COLUMNS, SnapshotStore
from epics_collector.collector._spilling import Spill
from epics_collector.collector._start_stop import StartStop
from epics_collector.collector._subscribing import ChannelSubscriber
from epics_collector.collector._triggers import ConditionInput, TriggerWindows
from epics_collector.collector._views import parse_query
from epics_collector.core import (
    AttrR,
    AttrRW,
    BusyError,
    Caller,
    Device,
    Enum,
    Int,
    Operation,
    ReadPool,
    Severity,
    Sources,
    Status,
    String,
    Subscription,
    Table,
    Update,
    command,
    listed,
    rpc,
    scan,
    validate_config,
)
from epics_collector.storage import (
    Columns,
    confined_path,
    describe,
    run_query,
    write_csv,
    write_json_atomic,
    write_nexus,
)
from epics_collector.upload import UploadFailedError, make_uploader, upload_with_retries

log = logging.getLogger(__name__)
_now = time.time  # Push has an argument named time
NEXUS_SUFFIXES = (".nxs", ".h5", ".hdf5", ".nx5")  # kept; other names get .nxs


class CollectorStates(StrEnum):
    """States of a collector."""

    IDLE = "Idle"
    RECORDING = "Recording"
    STOPPED = "Stopped"
    FAULT = "Fault"


class Collector(Device[CollectorConfig]):
    """Records source PVs losslessly into per-channel rings; serves the history as PVs."""

    config_model = CollectorConfig
    States = CollectorStates

    count = AttrR(Int(), description="Samples recorded in total (all channels, gap rows included)")
    dropped = AttrR(Int(), description="Updates known to be lost (MINOR alarm when > 0)")
    overruns = AttrR(
        Int(),
        description=(
            "Times a source's monitor queue filled while recording, so updates may have "
            "been squashed (MINOR alarm when > 0)"
        ),
    )
    excluded = AttrR(Int(), description="Inputs outside channels' include limits, not recorded")
    store_damage = AttrR(
        Int(),
        name="StoreDamage",
        description=(
            "Rows of the history on disk lost to damage (a damaged file, page or write-ahead "
            "log; also in Dropped): MAJOR, and held in Message, until AckDamage or Clear"
        ),
    )
    query_refused = AttrR(
        Int(),
        name="QueryRefused",
        description=(
            "Query calls refused because more were asked at once than reads allows (told "
            "to retry); MINOR alarm when > 0, and a MINOR Message at most every 10 s"
        ),
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
            }
        ),
        name="Channels",
        description=(
            "One row per channel: alias, pv, connected, count (rows since Clear), "
            "last_update (source time of the newest update, POSIX s), excluded, overruns "
            "and dropped (per channel), of which late (source time went back) and "
            "bad_time (no valid source time, e.g. a record's UDF value after an IOC "
            "restart: not recorded, a gap instead), kind (number, string, waveform, image)"
        ),
    )

    export_name = AttrRW(
        String(max_length=255),
        name="Export",
        description=(
            "Put a file name: writes the history into the data directory; answered once "
            "the file is complete"
        ),
    )
    export_path = AttrR(
        String(), name="ExportPath", description="The path of the last file written"
    )
    export_rows = AttrR(
        Int(),
        name="ExportRows",
        description=(
            "Rows in the last file written (0: written, with a MINOR Message: nothing recorded)"
        ),
    )
    export_format = AttrRW(
        Enum(choices=["nexus", "csv"]),
        name="ExportFormat",
        description="Format of Export: nexus or csv",
    )
    upload_status = AttrR(
        String(), name="UploadStatus", description="Last upload: where it went, or why not"
    )
    annotate = AttrRW(
        String(),
        name="Annotate",
        description="Put text: a timestamped note (exported with the data)",
    )
    annotation_table = AttrR(
        Table(columns={"time": np.float64, "text": str}),
        name="Annotations",
        description="Notes: time (POSIX s), text",
    )
    snapshot_table = AttrR(
        Table(columns=SNAPSHOT_COLUMNS),
        name="Snapshots",
        description="Trigger snapshots: id, trigger time, start, end, samples, complete",
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
        self.recorder = Recorder(self.config, self._recorder_event)
        self.reads = ReadPool(
            self.config.reads, name="query", arrivals=lambda: self.recorder.arrivals
        )
        self._refusals_reported = -math.inf  # when Message last said queries were refused
        self.query_refused.set(0)
        self.channel_pvs = ChannelPvFamily(self.recorder, self.config.tail, lambda: self.prefix)
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
        self.spill: Spill | None = None
        self._described = self._describe_failed = False  # recording.json written / failing
        if self.config.persist:
            self.spill = Spill(
                self.config, self._spill_dir, self.recorder, self.report, self._store_damaged
            )
        self.triggers: TriggerWindows | None = None
        if self.config.trigger is not None:
            store = SnapshotStore(self._spill_dir / "snapshots") if self.config.persist else None
            self.triggers = TriggerWindows(
                self.config.trigger, self.recorder, self.report, self.snapshot_table, store
            )
            triggers = self.triggers
            self.add_family(SnapshotPvFamily(self.recorder, lambda: triggers.snapshots))
        self.start_stop = StartStop(
            self.config.start_when,
            self.config.stop_when,
            start=self._start,
            stop=self._stop_for,
            recording=lambda: self.state.value == CollectorStates.RECORDING,
            report=self.report,
        )
        self._pushed: dict[str, str] = {}  # extra channels: alias -> kind
        self._upload_task: asyncio.Task[None] | None = None
        self.export_format.set(self.config.export.format)
        self.annotations = Annotations(
            self._spill_dir / "annotations.jsonl" if self.config.persist else None
        )
        self._publish_annotations()

    # export and annotations -------------------------------------------------------------------

    @export_name.on_put
    async def _export(self, name: str) -> None:
        nexus = self.export_format.value == "nexus"
        if nexus:
            suffix = "" if name.lower().endswith(NEXUS_SUFFIXES) else ".nxs"
        else:
            suffix = ".csv"
        path = confined_path(
            self.data_dir, name, suffix=suffix, overwrite=self.config.export.overwrite
        )
        data = gather(
            self.prefix,
            self.config_json.value,
            self.recorder,
            self.triggers,
            self.annotations.notes,
        )
        writer = write_nexus if nexus else write_csv
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        rows = await loop.run_in_executor(None, writer, path, data, self.data_dir)
        self.export_rows.set(rows)
        self.export_path.set(str(path))
        took = f"in {time.monotonic() - started:.2f} s"
        if rows == 0:
            self.report(f"exported 0 rows to {path.name} {took}: nothing recorded", Severity.MINOR)
        else:
            self.report(f"exported {rows} rows to {path.name} {took}")

    @command(name="Upload")
    async def upload_export(self) -> None:
        """Upload the last export to the configured data-management system (background)."""
        if self.config.upload is None:
            raise ValueError("no upload configured: add upload: {kind: ..., ...}")
        if not self.export_path.value:
            raise ValueError("nothing exported yet: put a file name to Export first")
        if self._upload_task is not None and not self._upload_task.done():
            raise ValueError("an upload is already running")
        path = Path(self.export_path.value)
        self._upload_task = asyncio.create_task(self._upload(path), name="upload")

    async def _upload(self, path: Path) -> None:
        assert self.config.upload is not None
        uploader = make_uploader(self.config.upload)
        metadata = {"device": self.prefix, "file": path.name, "exported": path.stat().st_mtime}
        try:
            location = await upload_with_retries(
                uploader, path, metadata, self.upload_status.set, write_json_atomic
            )
        except UploadFailedError as error:
            text = str(error)
            self.upload_status.set(
                text, severity=Severity.MAJOR, status=Status.DEVICE, message=text
            )
            self.report(text, Severity.MAJOR)
            return
        self.upload_status.set(f"uploaded {path.name} to {location}")
        self.report(f"uploaded {path.name} to {location}")

    @annotate.on_put
    async def _annotate(self, text: str) -> None:
        if not text.strip():
            raise ValueError("an annotation needs some text")
        self.annotations.add(text)
        self._publish_annotations()

    @rpc(name="Push")
    async def push(self, channel: str, value: Any, time: Any = "", severity: Any = "0") -> str:
        """Add a sample to an extra channel (made on first push): channel, value, time, severity.

        Samples come in time order: one older than the channel's newest row is refused
        with the reason (the same time again is taken).
        """
        sample = parse_push(
            channel, value, time, severity, now=_now(), max_bytes=self.config.push_max_bytes
        )
        target = next((c for c in self.recorder.channels if c.alias == sample.channel), None)
        if target is None:
            target = self._add_pushed_channel(sample.channel, sample.kind)
        elif target.alias not in self._pushed:
            raise ValueError(f"{channel} records {target.config.pv}; push to an extra channel")
        kind = target.config.kind
        if kind == "number" and sample.kind != "number":
            raise ValueError(f"{channel} holds numbers; {value!r} is not one")
        recorded = sample.value if kind == "number" else str(value)
        status = Status.CLIENT if sample.severity else 0
        update = Update(recorded, sample.time, sample.severity, status, ns=sample.ns)
        self.recorder.push(target, update)
        return f"{sample.channel}: {len(target.ring)} rows"

    @rpc(name="Query", access=Operation.READ, with_caller=True)
    async def query(
        self,
        alias: str = "",
        start: Any = "",
        end: Any = "",
        points: Any = "",
        operator: Any = "",
        snapshot: Any = "",
        after: Any = "",
        epoch: Any = "",
        *,
        caller: Caller,
    ) -> dict[str, Any]:
        """Part of a history as an NTTable: alias, start, end (POSIX s), points, operator.

        ``operator=page`` pages by position: each page's ``index`` and ``epoch`` columns
        are the cursor the next page gives as ``after`` (the last index) and ``epoch``.

        Computed on the read pool (config reads): at most reads.per_host queries of one
        client host at once, then "busy, retry" (counted in QueryRefused); an error goes
        back to the client only.
        """
        channel = self._named_channel(str(alias))
        arguments = {
            "start": start,
            "end": end,
            "points": points,
            "operator": operator,
            "after": after,
            "epoch": epoch,
        }
        try:
            return await self.reads.run(
                caller.host or "local", self._query, channel, arguments, str(snapshot).strip()
            )
        except BusyError:
            self._count_query_refusal()
            raise

    def _query(self, channel: Channel, arguments: dict[str, Any], snapshot: str) -> Any:
        """Compute a Query (on a read worker; the recorder's lock only per chunk)."""
        kind = channel.config.kind
        if snapshot:
            rows = self._snapshot_rows(snapshot, channel.alias)
            span = (float(rows.time[0]), float(rows.time[-1])) if len(rows) else (0.0, 0.0)
            return run_query([rows], parse_query(arguments, span, kind), kind)
        request = parse_query(arguments, self.recorder.span(channel), kind)
        deadline = time.monotonic() + self.config.reads.timeout
        return self.recorder.query(channel, request, deadline)

    def _count_query_refusal(self) -> None:
        """QueryRefused (MINOR), and Message at most every 10 s: a flood is worth a look."""
        self.query_refused.set(self.reads.refused, severity=Severity.MINOR)
        now = time.monotonic()
        if now - self._refusals_reported >= 10.0:
            self._refusals_reported = now
            limits = self.config.reads
            self.report(
                f"queries refused ({self.reads.refused} so far, see QueryRefused): more were "
                f"asked at once than reads allows ({limits.per_host} per host, "
                f"{limits.workers + limits.queue} in all); those readers were told to retry",
                Severity.MINOR,
            )

    def _named_channel(self, name: str) -> Channel:
        """A channel by alias or by source PV name (a clear error otherwise)."""
        found = self.recorder.by_alias.get(name)
        if found is not None:
            return found
        for channel in self.recorder.channels:
            if name == channel.config.pv:
                return channel
        aliases = listed([c.alias for c in self.recorder.channels])
        raise ValueError(f"no channel {name!r}; channels: {aliases}")

    def _snapshot_rows(self, snapshot: str, alias: str) -> Columns:
        found = None
        if self.triggers is not None and snapshot.strip().isdigit():
            found = next((s for s in self.triggers.snapshots if s.id == int(snapshot)), None)
        if found is None:
            raise ValueError(f"no snapshot {snapshot!r} (see Snapshots)")
        return found.rows.get(alias, Columns.empty())

    def _add_pushed_channel(self, alias: str, kind: str) -> Channel:
        config = validate_config(
            ChannelConfig, {"pv": f"push:{alias}", "alias": alias, "kind": kind}
        )
        if len(self._pushed) >= MAX_PUSHED_CHANNELS:
            raise ValueError(f"at most {MAX_PUSHED_CHANNELS} extra channels")
        channel = self.recorder.add_channel(config)
        self._pushed[alias] = kind
        self.recorder.mark_connected(channel)  # its source is the Push RPC
        if self.spill is not None:  # (nothing on disk yet: the next flush writes it)
            self._describe()
        self.report(f"extra channel {alias} ({kind}) created by a push")
        return channel

    def _describe(self) -> None:
        """Describe the recording on disk (persist: true) for whoever reads it later.

        Its factory keeps and serves the recording after this collector is destroyed,
        and needs each channel's alias, source PV and kind to do so.
        """
        if self.spill is None or not self.spill.owner:  # (another process's store)
            return
        self._described = False
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            describe(
                self.data_dir,
                type="collector",
                prefix=self.prefix,
                created=time.time(),
                channels=[
                    {"alias": ch.alias, "pv": ch.config.pv, "kind": ch.config.kind}
                    for ch in self.recorder.channels
                ],
            )
        except OSError as error:  # a full disk, a read-only folder: retried at each flush
            if not self._describe_failed:
                text = (
                    f"the recording's description could not be written ({error}); its rows "
                    "are kept, and it is written again at the next flush"
                )
                log.warning(text)
                if not self.spill.failing:  # (else Message says so already, MAJOR)
                    self.report(text, Severity.MINOR)
            self._describe_failed = True
            return
        self._described, self._describe_failed = True, False

    def _publish_annotations(self) -> None:
        notes = self.annotations.notes
        self.annotation_table.set({"time": [t for t, _ in notes], "text": [n for _, n in notes]})

    # commands -------------------------------------------------------------------------------

    @command(name="Start")
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

    @command(name="Stop")
    async def stop_recording(self) -> None:
        """Stop recording; the history stays.

        After a run that recorded no new sample, a MINOR Message names the channels that
        never connected.
        """
        self._stop_for("stopped")

    @command(name="Clear")
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
        self.store_damage.set(0)
        self.release()

    def _store_damaged(self, rows: int, text: str) -> None:
        """Rows on disk lost to damage: counted, and held in Message until acknowledged."""
        lost = int(self.store_damage.value or 0) + rows
        self.store_damage.set(lost, severity=Severity.MAJOR)
        self.hold(f"{text} (StoreDamage {lost}; put 1 to AckDamage once seen)", Severity.MAJOR)

    @command(name="AckDamage")
    async def acknowledge_damage(self) -> None:
        """Acknowledge the history lost to damage: Message may show other news again."""
        self.release()
        lost = int(self.store_damage.value or 0)
        self.store_damage.set(lost, severity=Severity.MINOR if lost else Severity.NO_ALARM)
        self.report(f"store damage acknowledged ({lost} rows lost; see StoreDamage)")

    @command(name="Trigger")
    async def trigger_now(self) -> None:
        """Freeze a trigger window around now (needs a trigger in the config)."""
        if self.triggers is None:
            raise ValueError("no trigger configured: add trigger: {pv, when, pre, post}")
        self.triggers.fire(time.time())

    def _stop_for(self, reason: str, severity: Severity = Severity.NO_ALARM) -> None:
        self.recorder.stop()
        if self._duration_timer is not None:
            self._duration_timer.cancel()
            self._duration_timer = None
        if self.state.value == CollectorStates.RECORDING:
            self.set_state(CollectorStates.STOPPED)
            if self.recorder.count == self._count_at_start:
                reason, severity = self._nothing_recorded(reason), max(severity, Severity.MINOR)
            self.report(f"{reason}: recorded {self.recorder.count} samples", severity)
        self.publisher.publish()

    def _nothing_recorded(self, reason: str) -> str:
        """Why a run recorded no sample, for the Message (a MINOR alarm: worth a look)."""
        never = [
            f"{ch.alias} ({ch.config.pv})" for ch in self.recorder.channels if not ch.ever_connected
        ]
        if never:
            names = listed(never)
            return f"{reason} with no new sample: never connected: {names} (check the PV names)"
        return f"{reason} with no new sample: no channel sent an update while recording"

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
        elif not channel.connected:
            self.report(f"{channel.alias} ({channel.config.pv}) {channel.reason}", Severity.MINOR)
        else:
            if self.subscriber is not None:
                self.subscriber.connected()  # the next batch of subscriptions may be due
            if self.recorder.connected == len(self.recorder.channels):  # O(1): 100k events
                self.report("all channels connected")

    # persistence ------------------------------------------------------------------------------

    @property
    def _spill_dir(self) -> Path:
        return self.data_dir / "spill"

    @scan(0.5)
    async def flush(self) -> None:
        """Spill newly recorded rows to disk (persist: true), at least every second.

        The writes run in an executor: the event loop keeps serving PVs meanwhile (the
        recorder's lock guards the rows taken). A failed write keeps its rows for the
        next flush; see :class:`Persistence`.
        """
        if self.spill is not None:
            await self.spill.flush(self._pushed)
            if not self._described:
                self._describe()

    # lifecycle ------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Reload spilled data, subscribe to every source, start publishing."""
        self._loop = asyncio.get_running_loop()
        if self.sources is None:
            raise RuntimeError("no source transport: run the collector with sources")
        resume = False if self.spill is None else self.spill.load(self._add_pushed_channel)
        self._describe()
        self.subscriber = ChannelSubscriber(
            self.sources,
            self.recorder,
            lambda ch: self.config.queue_size_for(ch.config),
            self.fault,
        )
        self.subscriber.start()
        self._subscribe_conditions()
        self._publishing = asyncio.create_task(self.publisher.run(), name="publish")
        if resume or self.config.autostart:
            await self.start_recording.method(self)

    def _subscribe_conditions(self) -> None:
        assert self.sources is not None and self._loop is not None
        inputs: list[tuple[str, Callable[[Any, float], None], Callable[[str], None]]] = []
        if self.triggers is not None:
            self.triggers.restore()
            pv = self.triggers.config.pv
            inputs.append(
                (pv, self.triggers.on_value, partial(self.start_stop.lost, "trigger", pv))
            )
        for role, pv in self.start_stop.inputs():
            on_value = partial(self.start_stop.on_value, role)
            inputs.append((pv, on_value, partial(self.start_stop.lost, role, pv)))
        for pv, on_value, on_lost in inputs:
            listener = ConditionInput(self._loop, on_value, on_lost)
            self._subscriptions.append(self.sources.subscribe(pv, listener, queue_size=1000))

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
        if self._upload_task is not None:
            self._upload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upload_task
        await self.flush.method(self)
        if self.spill is not None:
            self.spill.close()
        self.reads.close()
        if self._publishing is not None:
            self._publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publishing
