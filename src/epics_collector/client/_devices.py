"""Asynchronous proxies of devices: a collector, a processing device, any device."""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Self, TypedDict, Unpack, overload

import numpy as np

from epics_collector.client._connection import Connection
from epics_collector.client._errors import (
    ClientError,
    DeviceError,
    EmptyExportWarning,
    NoConnectionError,
)
from epics_collector.collector import ChannelPv, CollectorPv, channel_pv
from epics_collector.core import DevicePv, listed
from epics_collector.processing import PARAM, ProcessingPv
from epics_collector.pva import Network


class ViewArgs(TypedDict, total=False):
    """What part of a history to read (keywords of ``history``): ``start``, ``end`` (POSIX seconds or datetimes; default the oldest / newest row), ``points`` (rows at most, default 1000), ``operator`` (raw, mean, min, max, first, last, count, minmax; default minmax for numbers, raw otherwise)."""  # noqa: E501

    start: float | datetime.datetime | None
    end: float | datetime.datetime | None
    points: int | None
    operator: str | None


@dataclass(frozen=True)
class Binned:
    """A history reduced to equal time bins (empty bins left out), oldest first.

    ``time`` is each bin's middle (for ``first``/``last`` the row's time); ``value`` the
    operator's result; ``min``, ``max`` and ``count`` (values per bin, NaN gaps not
    counted) only for ``minmax``, the plotting operator: a line through ``value`` with a
    band from ``min`` to ``max`` never hides a spike. ``severity`` (``minmax`` too) is
    the highest alarm severity of each bin's rows.
    """

    time: np.ndarray
    value: np.ndarray
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    count: np.ndarray | None = None
    severity: np.ndarray | None = None


class History(NamedTuple):
    """A channel's recorded rows, oldest first (arrays of equal length).

    ``value`` is 1-D for numbers and strings, 2-D (rows x length) for waveforms, and
    ``None`` for images (read frames from the ``Frame`` PV).
    """

    time: np.ndarray
    value: np.ndarray | None
    severity: np.ndarray
    status: np.ndarray

    def to_dataframe(self) -> Any:
        """The rows as a pandas DataFrame indexed by time (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ClientError("to_dataframe() needs pandas: pip install pandas") from None
        columns: dict[str, Any] = {"severity": self.severity, "status": self.status}
        if self.value is not None:
            columns["value"] = list(self.value) if self.value.ndim > 1 else self.value
        index = pd.to_datetime(self.time, unit="s", utc=True)
        return pd.DataFrame(columns, index=index.rename("time"))


def view_arguments(view: ViewArgs) -> dict[str, str]:
    """A Query's arguments (text) from ``history`` keywords."""
    arguments = {}
    for key, given in view.items():
        if isinstance(given, datetime.datetime):
            given = given.timestamp()
        if given is not None:
            arguments[key] = str(given)
    return arguments


def view_of(table: Any) -> History | Binned:
    """A Query's answer: raw rows as a History, bins as Binned."""
    if "status" in table:  # raw rows (bins of minmax carry a severity, not a status)
        return History(table["time"], table.get("value"), table["severity"], table["status"])
    return Binned(
        table["time"],
        table["value"],
        table.get("min"),
        table.get("max"),
        table.get("count"),
        table.get("severity"),
    )


async def every_row(query: Callable[..., Awaitable[Any]], page_rows: int) -> History:
    """Every row a ``Query`` holds, page by page (by position: each row once, or an error).

    ``query(**arguments)`` calls the Query RPC with these arguments added to its own.
    """
    pages: list[Any] = []
    cursor: dict[str, str] = {}
    while True:
        page = await query(operator="page", points=str(page_rows), **cursor)
        pages.append(page)
        if len(page["time"]) < page_rows:
            return paged_history(pages)
        cursor = {"epoch": str(int(page["epoch"][0])), "after": str(int(page["index"][-1]))}


def paged_history(pages: Sequence[Any]) -> History:
    """The rows of ``Query operator=page`` tables, one after the other, as a History."""
    times = [np.asarray(p["time"], np.float64) for p in pages]
    severity = [np.asarray(p["severity"]) for p in pages]
    status = [np.asarray(p["status"]) for p in pages]
    values: list[np.ndarray] = []
    for page in pages:
        if "elements" in page:  # array rows: every row's elements, one after the other
            counts = np.asarray(page["elements"], np.int64)
            flat = np.asarray(page["values"])
            width = int(counts[0]) if len(counts) else 0
            values.append(flat.reshape(len(counts), width) if len(counts) else flat)
        else:
            values.append(np.asarray(page["value"]))
    joined = [np.concatenate(c) if c else np.zeros(0) for c in (times, severity, status)]
    value = np.concatenate(values) if values else np.zeros(0)
    return History(joined[0], value, joined[1], joined[2])


HISTORY_PAGE = 100_000  # rows a page when a whole history is read by Query


class AsyncDevice:
    """Any device under ``prefix``: its State, Message, Config, and error reporting.

    Proxies come from an :class:`AsyncFactory`, or from :meth:`connect` for a device
    anywhere on the network (``async with`` then closes the connection).
    """

    def __init__(self, connection: Connection, prefix: str, *, owned: bool = False) -> None:
        self.connection, self.prefix = connection, prefix
        self._owned = owned  # the connection is this proxy's own (made by connect)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r})"

    @classmethod
    async def connect(
        cls, prefix: str, *, network: Network | None = None, timeout: float = 5.0
    ) -> Self:
        """A proxy of the device served under ``prefix`` (no factory needed)."""
        return cls(Connection(network, timeout), prefix, owned=True)

    async def close(self) -> None:
        """Close the connection :meth:`connect` opened (proxies from a factory: no-op)."""
        if self._owned:
            self.connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, pv: str) -> Any:
        """The value of the device's PV ``pv`` (the part after the prefix)."""
        return await self.connection.get(self.prefix + pv)

    async def put(self, pv: str, value: Any, timeout: float | None = None) -> None:
        """Put to the device's PV ``pv``; a refusal raises :class:`DeviceError` with Message."""
        try:
            await self.connection.put(self.prefix + pv, value, timeout)
        except DeviceError as error:
            raise type(error)(str(error), await self._message()) from None

    async def call(self, rpc: str, timeout: float | None = None, **arguments: Any) -> Any:
        """Call the device's RPC ``rpc`` with string arguments (as ``pvcall`` sends them)."""
        text = {key: str(value) for key, value in arguments.items()}
        try:
            return await self.connection.call(self.prefix + rpc, text, timeout)
        except DeviceError as error:
            raise type(error)(str(error), await self._message()) from None

    async def _message(self) -> str:
        try:
            return str(await self.get(DevicePv.MESSAGE))
        except ClientError:
            return ""

    async def state(self) -> str:
        """The device's State (a choice name such as ``Recording``)."""
        return str(await self.get(DevicePv.STATE))

    async def message(self) -> str:
        """The device's last status or error text."""
        return str(await self.get(DevicePv.MESSAGE))

    async def config(self) -> dict[str, Any]:
        """The device's configuration (defaults filled in)."""
        return json.loads(await self.get(DevicePv.CONFIG))

    async def wait_until(self, state: str, timeout: float = 10.0) -> None:
        """Wait until State is ``state`` (a monitor); TimeoutError naming the last one."""
        try:
            await self.connection.wait_for_value(
                self.prefix + DevicePv.STATE, lambda value: str(value) == state, timeout
            )
        except NoConnectionError as error:
            raise TimeoutError(f"{error}, not {state!r}") from None

    async def _command(self, pv: str) -> None:
        await self.put(pv, 1)


class AsyncCollector(AsyncDevice):
    """A collector device: record, read histories, export, upload, annotate."""

    async def start(self) -> None:
        """Start recording."""
        await self._command(CollectorPv.START)

    async def stop(self) -> None:
        """Stop recording (the history stays)."""
        await self._command(CollectorPv.STOP)

    async def clear(self) -> None:
        """Forget the recorded history."""
        await self._command(CollectorPv.CLEAR)

    async def trigger(self) -> None:
        """Take a snapshot now (collectors with a trigger window)."""
        await self._command(CollectorPv.TRIGGER)

    async def count(self) -> int:
        """Samples recorded in total."""
        return int(await self.get(CollectorPv.COUNT))

    async def channels(self) -> dict[str, np.ndarray]:
        """The Channels table: alias, pv, connected, count, last_update, excluded."""
        return await self.get(CollectorPv.CHANNELS)

    async def add_channel(self, channel: str | Mapping[str, Any]) -> str:
        """Record one more channel now: a PV name or a channel as the config takes it.

        ``{"pv": ..., "alias": ..., "kind": ..., "compress": ...}``; checked like the
        config's channels (a bad one raises :class:`DeviceError` naming the field). The
        collector keeps it for its next start. Returns the device's answer.
        """
        text = channel if isinstance(channel, str) else json.dumps(dict(channel))
        return str(await self.connection.call(self.prefix + CollectorPv.ADD, {"channel": text}))

    async def remove_channel(self, alias: str) -> str:
        """Record channel ``alias`` no more; its rows stay (``history``, exports, Removed)."""
        return str(await self.connection.call(self.prefix + CollectorPv.REMOVE, {"alias": alias}))

    async def removed_channels(self) -> dict[str, np.ndarray]:
        """The Removed table: alias, pv, kind, added, removed, count."""
        return await self.get(CollectorPv.REMOVED)

    async def alias(self, channel: str) -> str:
        """The alias of ``channel``, given as an alias or as the source PV name."""
        table = await self.channels()
        aliases, pvs = [str(a) for a in table["alias"]], [str(p) for p in table["pv"]]
        if channel in aliases:
            return channel
        for alias, pv in zip(aliases, pvs, strict=True):
            if channel in (pv, pv.partition("://")[2]):
                return alias
        raise ClientError(f"{self.prefix} no channel {channel!r}; channels: {listed(aliases)}")

    @overload
    async def history(self, channel: str) -> History: ...

    @overload
    async def history(self, channel: str, **view: Unpack[ViewArgs]) -> History | Binned: ...

    async def history(self, channel: str, **view: Unpack[ViewArgs]) -> History | Binned:
        """A channel's history (by alias or source PV name): all of it, or part of it.

        Without keywords: every row (the ``Table`` PV; a removed channel's, which has no
        PVs, read by ``Query`` pages). With any of ``start``/``end``
        (POSIX seconds or datetimes; default: the oldest/newest row), ``points`` (default
        1000) or ``operator`` (default ``minmax`` for numbers, ``raw`` otherwise) the
        device's ``Query`` RPC reduces it on the server: ``raw`` gives a
        :class:`History` of the rows in range (at most ``points``), the other operators
        (``mean min max first last count minmax``) a :class:`Binned`.
        """
        if any(value is not None for value in view.values()):
            return await self._query(channel, view)
        try:
            alias = await self.alias(channel)
        except ClientError:
            removed = await self.removed_channels()
            if channel not in [str(a) for a in removed["alias"]]:
                raise
            call = functools.partial(self.connection.call, self.prefix + CollectorPv.QUERY)
            return await every_row(lambda **more: call({"alias": channel, **more}), HISTORY_PAGE)
        table = await self.get(channel_pv(alias, ChannelPv.TABLE))
        value = table.get("value")
        if value is None and len(table["time"]):
            try:
                value = np.asarray(await self.get(channel_pv(alias, ChannelPv.VALUE)))
            except DeviceError:
                value = None  # an image channel: no Value PV
        return History(table["time"], value, table["severity"], table["status"])

    async def _query(self, channel: str, view: ViewArgs) -> History | Binned:
        arguments = {"alias": channel, **view_arguments(view)}  # an alias or a source PV
        return view_of(await self.connection.call(self.prefix + CollectorPv.QUERY, arguments))

    async def snapshots(self) -> dict[str, np.ndarray]:
        """The Snapshots table of trigger windows."""
        return await self.get(CollectorPv.SNAPSHOTS)

    async def annotations(self) -> dict[str, np.ndarray]:
        """The Annotations table (time, text)."""
        return await self.get(CollectorPv.ANNOTATIONS)

    async def annotate(self, text: str) -> None:
        """Add a timestamped note (exported with the data)."""
        await self.put(CollectorPv.ANNOTATE, text)

    async def export(self, name: str, format: str = "nexus", timeout: float = 600.0) -> str:  # noqa: A002
        """Write the history to ``name`` in the data directory; return the path written.

        The device answers the put once the file is complete (``nexus`` or ``csv``). A file
        with no rows (nothing recorded) is written, with an :class:`EmptyExportWarning`.
        """
        await self.put(CollectorPv.EXPORT_FORMAT, format)
        await self.put(CollectorPv.EXPORT, name, timeout)
        path = str(await self.get(CollectorPv.EXPORT_PATH))
        if int(await self.get(CollectorPv.EXPORT_ROWS)) == 0:
            warnings.warn(
                f"{self.prefix} exported 0 rows to {path}: nothing was recorded",
                EmptyExportWarning,
                stacklevel=2,
            )
        return path

    async def upload(self, timeout: float = 600.0) -> str:
        """Upload the last export with the configured uploader; return UploadStatus.

        Waits for the background upload (retries included); a failure raises
        :class:`DeviceError`.
        """

        def stamp(value: Any) -> tuple[int, int]:
            return value["timeStamp.secondsPastEpoch"], value["timeStamp.nanoseconds"]

        name = self.prefix + CollectorPv.UPLOAD_STATUS
        before = stamp(await self.connection.get_value(name))
        await self._command(CollectorPv.UPLOAD)

        async def done() -> Any:  # a monitor: the first status posted after ours that is final
            async for status in self.connection.monitor_values(name, 16):
                if stamp(status) != before and not str(status["value"]).startswith("uploading"):
                    return status
            raise DeviceError(f"{name}: the monitor ended")  # (it never does)

        try:
            status = await asyncio.wait_for(done(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.prefix} upload not done in {timeout:g} s") from None
        text = str(status["value"])
        if status["alarm.severity"] >= 2:
            raise DeviceError(text, await self._message())
        return text


class AsyncProcessor(AsyncDevice):
    """A processing device: enable/disable, parameters, outputs."""

    async def enable(self) -> None:
        """Process input updates (also clears Fault)."""
        await self.put(ProcessingPv.ENABLE, 1)

    async def disable(self) -> None:
        """Stop processing; outputs keep their last values."""
        await self.put(ProcessingPv.ENABLE, 0)

    async def params(self) -> dict[str, Any]:
        """The processor's parameters, as they are now."""
        names = (await self.config())["processor"]["params"]
        return {name: await self.get(PARAM + name) for name in names}

    async def set_param(self, name: str, value: Any) -> None:
        """Change one parameter (checked by the device; a refusal raises DeviceError)."""
        await self.put(PARAM + name, value)

    async def output_names(self) -> list[str]:
        """The names of the outputs."""
        return list((await self.config())["outputs"])

    async def outputs(self) -> dict[str, Any]:
        """Every output's current value."""
        return {name: await self.get(name) for name in await self.output_names()}

    async def monitor(self, output: str) -> AsyncIterator[Any]:
        """Each new value of ``output``, as it is computed."""
        async for value in self.connection.monitor(self.prefix + output):
            yield value
