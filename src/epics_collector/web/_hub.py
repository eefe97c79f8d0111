"""What the dashboard shows, kept current from PVAccess: devices, their status, traces.

Everything is driven by monitors, and a reader asks only for rows that exist: a
collector's ``Channels`` monitor says when a channel's row count grew, and only then
are the new rows read (``Query``, raw, from just after the last point shown). An idle
channel costs nothing and never sends a query the device would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from epics_collector.client import (
    AsyncCollector,
    AsyncFactory,
    AsyncProcessor,
    ClientError,
    Connection,
    DeviceInfo,
    History,
    decode,
)
from epics_collector.collector import ChannelPv, CollectorPv, channel_pv
from epics_collector.core import DevicePv, Severity
from epics_collector.factory import FactoryPv
from epics_collector.processing import ProcessingPv
from epics_collector.pva import Network, alarm
from epics_collector.web._trace import TAIL, Display, Trace, finite_or_none

log = logging.getLogger(__name__)
READS_PER_DEVICE = 4  # reads of one collector in flight at once (it allows 16 per host)
RETRY = 1.0  # seconds before a watch that failed is tried again
READ_EVERY = 0.25  # seconds at least between reads of one channel (bench/web.py: CPU)
#: The PVs of each device type shown on its status line.
STATUS_PVS = {
    "collector": (
        DevicePv.STATE,
        CollectorPv.COUNT,
        CollectorPv.DROPPED,
        CollectorPv.OVERRUNS,
        DevicePv.MESSAGE,
    ),
    "processing": (
        DevicePv.STATE,
        ProcessingPv.COUNT,
        ProcessingPv.ERRORS,
        ProcessingPv.OVERRUNS,
        DevicePv.MESSAGE,
    ),
}
CHANNELS = CollectorPv.CHANNELS


def _plain(value: Any) -> Any:
    """A JSON-ready form of a decoded scalar (numbers stay numbers, NaN becomes None)."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | np.floating):
        return finite_or_none(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return str(value)


class Hub:
    """Watches a factory: its devices, their status, each channel's and output's trace."""

    def __init__(self, factory_prefix: str, network: Network | None = None) -> None:
        self.prefix = factory_prefix
        self.connection = Connection(network, timeout=2.0)
        self.factory = AsyncFactory(self.connection, factory_prefix)
        self.devices: list[DeviceInfo] = []
        self.error = ""
        self.traces: dict[str, Trace] = {}
        #: By device prefix: each status PV's {"value", "severity"}.
        self.status: dict[str, dict[str, dict[str, Any]]] = {}
        #: By device prefix, by what was being read: why the hub could not (on the page).
        self.problems: dict[str, dict[str, str]] = {}
        #: By processing device prefix: its parameter names.
        self.params: dict[str, list[str]] = {}
        #: Recordings kept after their collector: id, name, first, last, rows, channels.
        self.retired: list[dict[str, Any]] = []
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._retired_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (on the running loop)."""
        self._task = asyncio.create_task(self._run(), name="hub")
        self._retired_task = asyncio.create_task(
            self._forever(self.prefix, "its recordings", self._follow_retired), name="hub retired"
        )

    async def stop(self) -> None:
        """Stop every watcher and close the connection."""
        for task in [self._task, self._retired_task, *self._watchers.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.connection.close()

    async def _run(self) -> None:
        """Follow the factory's device list: a monitor of its ``Devices`` table.

        No answer within the connection's timeout, or the factory lost, shows as an error
        on the page; the monitor finds the factory again by itself.
        """
        seen = False
        devices_pv = self.prefix + FactoryPv.DEVICES

        def not_yet() -> None:
            if not seen:
                self.error = f"factory {self.prefix} unreachable: {devices_pv} does not answer"

        def lost() -> None:
            if seen:  # (p4p tells "not connected yet" first: the timer says that)
                self.error = f"factory {self.prefix} unreachable: disconnected"
                self._follow([])

        timer = asyncio.get_running_loop().call_later(self.connection.timeout, not_yet)
        try:
            async for devices in self.factory.watch_devices(on_disconnect=lost):
                seen, self.error = True, ""
                self._follow(devices)
        finally:
            timer.cancel()

    async def _follow_retired(self) -> None:
        """Follow the factory's RecordedChannels (a monitor): its retired recordings."""
        name = self.prefix + FactoryPv.RECORDED_CHANNELS
        async for value in self.connection.monitor_values(name, 4):
            self.retired = retired_recordings(decode(value))

    def _follow(self, devices: list[DeviceInfo]) -> None:
        """Watch each device in ``devices``; forget the others."""
        self.devices = devices
        current = {info.prefix: info for info in devices}
        for prefix in [p for p in self._watchers if p not in current]:
            self._forget(prefix)
        for prefix, info in current.items():
            if prefix not in self._watchers:
                self._watchers[prefix] = asyncio.create_task(
                    self._watch_device(info), name=f"hub {prefix}"
                )

    def _forget(self, prefix: str) -> None:
        self._watchers.pop(prefix).cancel()
        for key in [k for k in self.traces if k.startswith(prefix)]:
            del self.traces[key]
        for table in (self.status, self.problems, self.params):
            table.pop(prefix, None)

    async def _watch_device(self, info: DeviceInfo) -> None:
        names = STATUS_PVS.get(info.type, (DevicePv.STATE, DevicePv.MESSAGE))
        watches = [
            self._forever(info.prefix, n, lambda n=n: self._follow_status(info.prefix, n))
            for n in names
        ]
        if info.type == "collector":
            follow = functools.partial(self._follow_channels, info)
            watches.append(self._forever(info.prefix, CHANNELS, follow))
        elif info.type == "processing":
            follow = functools.partial(self._follow_outputs, info)
            watches.append(self._forever(info.prefix, "outputs", follow))
        await asyncio.gather(*watches)

    def _problem(self, prefix: str, what: str, error: BaseException | None) -> None:
        """Note (or, with None, clear) why ``what`` of a device could not be read."""
        problems = self.problems.setdefault(prefix, {})
        if error is None:
            problems.pop(what, None)
            return
        problems[what] = f"dashboard could not read {what}: {error}"
        if isinstance(error, ClientError):
            log.warning("%s%s: %s", prefix, what, error)  # a device away, a refusal
        else:  # a bug of the dashboard: keep its traceback
            log.error("%s%s", prefix, what, exc_info=error)

    async def _forever(self, prefix: str, what: str, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a device that went away comes back later
                self._problem(prefix, what, error)
            await asyncio.sleep(RETRY)

    async def _follow_status(self, prefix: str, name: str) -> None:
        status = self.status.setdefault(prefix, {})

        def lost() -> None:  # shown as disconnected, not as the last value seen
            status[name] = {"value": "(disconnected)", "severity": int(Severity.INVALID)}

        async for value in self.connection.monitor_values(prefix + name, 4, lost):
            status[name] = {"value": _plain(decode(value)), "severity": _severity(value)}
            self._problem(prefix, name, None)

    # collectors ----------------------------------------------------------------------

    async def _follow_channels(self, info: DeviceInfo) -> None:
        """Each number channel's trace, read when the Channels table says it grew."""
        collector = AsyncCollector(self.connection, info.prefix)
        reads = asyncio.Semaphore(READS_PER_DEVICE)
        wanted: dict[str, asyncio.Event] = {}
        tasks: list[asyncio.Task[None]] = []
        try:
            async for table in self.connection.monitor(info.prefix + CHANNELS, 4):
                for alias, pv, count, kind in zip(
                    table["alias"], table["pv"], table["count"], table["kind"], strict=True
                ):
                    if str(kind) != "number":
                        continue  # strings, arrays, images: not plotted here
                    alias, key = str(alias), info.prefix + str(alias)
                    if key not in wanted:
                        wanted[key] = asyncio.Event()
                        self.traces[key] = Trace(alias, info.name)
                        tasks.append(
                            asyncio.create_task(
                                self._follow_channel(collector, alias, str(pv), wanted[key], reads)
                            )
                        )
                    trace = self.traces[key]
                    if int(count) != trace.rows:
                        trace.rows = int(count)
                        wanted[key].set()
        finally:
            for task in tasks:
                task.cancel()

    async def _follow_channel(
        self,
        collector: AsyncCollector,
        alias: str,
        pv: str,
        grew: asyncio.Event,
        reads: asyncio.Semaphore,
    ) -> None:
        """Read a channel's new rows each time it grew: its Tail first, then only new rows.

        Never the whole history: the first read moves ``tail`` rows, each later one the
        rows recorded since (a few per update), so a long recording costs the same as a
        short one. If more rows came than :data:`TAIL`, the Tail is read instead. A
        channel that did not grow is not read: no range past the newest row is asked.
        """
        trace = self.traces[collector.prefix + alias]
        trace.display = await self._source_display(pv)
        read_rows = None  # the channel's row count at the last read
        while True:
            await grew.wait()
            await asyncio.sleep(READ_EVERY)  # rows that come meanwhile: one read
            grew.clear()
            rows = trace.rows or 0
            try:
                async with reads:
                    if read_rows is None or not trace.points or rows - read_rows > TAIL:
                        table = await collector.get(channel_pv(alias, ChannelPv.TAIL))
                        trace.replace(table["time"], table["value"], table["severity"])
                    else:
                        answer = await collector.history(
                            alias,
                            start=float(np.nextafter(trace.last_time, np.inf)),
                            operator="raw",
                            points=TAIL,
                        )
                        assert isinstance(answer, History)
                        trace.extend(answer.time, answer.value, answer.severity)
                read_rows = rows
                self._problem(collector.prefix, alias, None)
            except Exception as error:  # shown on the page; the Tail is read next
                self._problem(collector.prefix, alias, error)
                read_rows = None
                grew.set()
                await asyncio.sleep(RETRY)

    async def _source_display(self, pv: str) -> Display:
        """Units and precision of a channel's source (none if it is not reachable here).

        Read over PVAccess; a ``ca://`` source is asked by its name too (an EPICS 7
        IOC's QSRV serves its records on both).
        """
        _, _, rest = pv.partition("://")
        try:
            return Display.of(await self.connection.get_value(rest or pv, timeout=1.0))
        except ClientError:
            return Display()

    # processing devices -----------------------------------------------------------------

    async def _follow_outputs(self, info: DeviceInfo) -> None:
        processor = AsyncProcessor(self.connection, info.prefix)
        self.params[info.prefix] = list(await processor.params())
        names = await processor.output_names()
        await asyncio.gather(*(self._follow_output(info, name) for name in names))

    async def _follow_output(self, info: DeviceInfo, output: str) -> None:
        key = info.prefix + output
        trace = self.traces.setdefault(key, Trace(output, info.name))
        async for value in self.connection.monitor_values(key):
            number = decode(value)
            if not isinstance(number, int | float) or isinstance(number, bool):
                continue  # not a number: nothing to plot
            trace.display = Display.of(value)
            stamp = value["timeStamp.secondsPastEpoch"] + value["timeStamp.nanoseconds"] * 1e-9
            trace.extend([stamp], [float(number)], [_severity(value)])

    # the page's view ---------------------------------------------------------------------

    def snapshot(self, page: PageView) -> dict[str, Any]:
        """Devices, status, and what each trace gained since ``page`` saw it (kept current).

        A trace whose points were replaced is sent whole and listed in ``reset``; a
        trace's ``meta`` (label, units, precision) only when it is new to the page or
        changed.
        """
        traces, reset, meta = {}, [], {}
        for key, trace in list(self.traces.items()):
            generation, seq = page.points.get(key, (-1, 0))
            if generation != trace.generation:
                reset.append(key)
                seq = 0
            points = trace.since(seq)
            if points or generation != trace.generation:
                traces[key] = points
            page.points[key] = (trace.generation, trace.seq)
            described = trace.describe()
            if page.meta.get(key) != described:
                meta[key] = page.meta[key] = described
        devices = []
        for info in self.devices:
            entry = asdict(info)
            entry["status"] = self.status.get(info.prefix, {})
            entry["problem"] = "; ".join(self.problems.get(info.prefix, {}).values())
            entry["params"] = self.params.get(info.prefix, [])
            devices.append(entry)
        return {
            "time": time.time(),
            "factory": self.prefix,
            "error": self.error,
            "devices": devices,
            "recordings": self.retired,
            "traces": traces,
            "reset": reset,
            "meta": meta,
        }


def retired_recordings(table: Any) -> list[dict[str, Any]]:
    """The retired recordings of a RecordedChannels table, each with its channels."""
    found: dict[str, dict[str, Any]] = {}
    for k in range(len(table["recording"])):
        if str(table["state"][k]) != "retired":
            continue
        recording = str(table["recording"][k])
        entry = found.setdefault(
            recording,
            {"id": recording, "name": recording.partition(".")[0], "rows": 0, "channels": []},
        )
        rows = int(table["rows"][k])
        entry["rows"] += rows
        entry["channels"].append(
            {
                "alias": str(table["alias"][k]),
                "pv": str(table["pv"][k]),
                "kind": str(table["kind"][k]),
                "rows": rows,
                "first": finite_or_none(float(table["first"][k])),
                "last": finite_or_none(float(table["last"][k])),
            }
        )
    return list(found.values())


@dataclass
class PageView:
    """What one page was sent of each trace: (generation, seq) and its last meta."""

    points: dict[str, tuple[int, int]] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)


def _severity(value: Any) -> int:
    return alarm(value)[0]
