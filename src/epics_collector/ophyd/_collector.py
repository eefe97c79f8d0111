"""A collector as an ophyd-async device: flyable, emitting its history into the run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import numpy as np
from bluesky.protocols import StreamAsset
from event_model import ComposeStreamResource, DataKey, PartialEvent, StreamRange
from ophyd_async.core import (
    AsyncStatus,
    Device,
    DeviceMap,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    TriggerableCommand,
    wait_for_value,
)
from ophyd_async.epics.core import PviDeviceConnector

from epics_collector.client import AsyncCollector, History
from epics_collector.collector import ChannelConfig
from epics_collector.core import validate_config
from epics_collector.ophyd._context import shared_connection
from epics_collector.ophyd._view import HistoryView

T = TypeVar("T")


class _Run:
    """What the collector and its channels share about the current run (not a Device)."""

    def __init__(self, prefix: str, export_uri: str | None = None) -> None:
        self.prefix = prefix
        self.timeout = 10.0
        self.export_path = ""
        self.export_uri = export_uri  # the data directory as the RunEngine's host sees it
        self.histories: dict[str, History] = {}

    def file_uri(self) -> str:
        """Where the RunEngine's readers find the last export.

        With ``export_uri`` (the collector's data directory as this host sees it: a
        shared mount, an HTTP server of it), that URI and the file's name; else the
        path the device wrote, which is only right on the device's own host.
        """
        path = Path(self.export_path)
        if self.export_uri is None:
            return path.absolute().as_uri()
        return self.export_uri.rstrip("/") + "/" + quote(path.name)

    async def call(self, method: Callable[[AsyncCollector], Awaitable[T]]) -> T:
        """``method(client)`` on the process's shared client context."""
        return await method(AsyncCollector(shared_connection(self.timeout), self.prefix))

    async def history(self, alias: str) -> History:
        """The channel's rows, fetched once per run after ``complete``."""
        if alias not in self.histories:
            self.histories[alias] = await self.call(lambda client: client.history(alias))
        return self.histories[alias]


def _data_key(source: str, values: np.ndarray | None, external: bool) -> DataKey:
    if values is None:
        return DataKey(source=source, dtype="number", shape=[])
    row_shape = list(values.shape[1:])
    kind = values.dtype.kind
    dtype: Any = "array" if row_shape else ("string" if kind in "USO" else "number")
    key = DataKey(source=source, dtype=dtype, shape=row_shape)
    if kind not in "USO":
        key["dtype_numpy"] = values.dtype.str
    if external:
        key["external"] = "STREAM:"
    return key


class CollectorChannel(Device):
    """One channel of a collector: its own event stream ``<collector>-<alias>``."""

    def __init__(self, run: _Run, alias: str, name: str = "") -> None:
        self._run, self.alias = run, alias
        super().__init__(name=name)

    @property
    def source(self) -> str:
        """The PV its rows come from."""
        return f"pva://{self._run.prefix}{self.alias}:Table"

    async def describe_collect(self) -> dict[str, DataKey]:
        """Value and severity of each recorded row."""
        history = await self._run.history(self.alias)
        return {
            self.name: _data_key(self.source, history.value, external=False),
            f"{self.name}-severity": DataKey(source=self.source, dtype="integer", shape=[]),
        }

    async def collect(self) -> AsyncIterator[PartialEvent]:
        """One event per recorded row, stamped with the row's source timestamp."""
        history = await self._run.history(self.alias)
        for i, stamp in enumerate(history.time.tolist()):
            value = None if history.value is None else history.value[i]
            value = value.tolist() if isinstance(value, np.ndarray) else value
            if isinstance(value, np.generic):
                value = value.item()
            severity = int(history.severity[i])
            yield PartialEvent(
                data={self.name: value, f"{self.name}-severity": severity},
                timestamps={self.name: stamp, f"{self.name}-severity": stamp},
                time=stamp,
            )


class CollectorChannelAsset(CollectorChannel):
    """A channel whose rows stay in the exported NeXus file (StreamResource/StreamDatum)."""

    async def describe_collect(self) -> dict[str, DataKey]:  # type: ignore[override]
        """The value column, external: rows of ``/entry/channels/<alias>/value``."""
        history = await self._run.history(self.alias)
        return {self.name: _data_key(self.source, history.value, external=True)}

    async def get_index(self) -> int:
        """Rows written (= events this channel provides)."""
        return len((await self._run.history(self.alias)).time)

    async def collect_asset_docs(self, index: int | None = None) -> AsyncIterator[StreamAsset]:
        """A StreamResource for the dataset in the export, and one StreamDatum for its rows."""
        rows = await self.get_index() if index is None else index
        bundle = ComposeStreamResource()(
            mimetype="application/x-hdf5",
            uri=self._run.file_uri(),
            data_key=self.name,
            parameters={"dataset": f"/entry/channels/{self.alias}/value", "chunk_shape": [rows]},
            uid=None,
            validate=True,
        )
        yield "stream_resource", bundle.stream_resource_doc
        yield "stream_datum", bundle.compose_stream_datum(StreamRange(start=0, stop=rows))

    async def collect(self) -> AsyncIterator[PartialEvent]:  # type: ignore[override]
        """Not used: this channel's data are in the file."""
        raise NotImplementedError("asset channels are collected with collect_asset_docs")
        yield  # pragma: no cover


class CollectorDevice(StandardReadable):
    """A collector device for bluesky, built from the collector's own ``P:PVI``: a flyable.

    ``kickoff`` clears the history and starts recording; ``complete`` stops it (and
    with ``export=True`` writes the NeXus file). Each channel is a child in
    :attr:`channels` with its own stream ``<name>-<alias>``: events (value, severity,
    source timestamp) by default, or with ``export=True`` StreamResource/StreamDatum
    documents pointing at the NeXus file. Channels are read from the device at connect
    unless given.

    The file is written on the collector's host. ``export_uri`` says where the
    RunEngine's host (and Tiled, databroker) find the collector's data directory, as in
    ophyd-async's path providers: ``file://localhost/mnt/beamline/col1`` for a shared
    mount, ``https://files.example/col1`` for a web server of it. Without it the
    documents carry the path the device wrote (right only on the device's host).

    Every PV the collector serves is a child, found in its PVI at connect (commands as
    ``TriggerableCommand``); only those that plans use are typed here.
    """

    state: SignalR[str]
    count: Annotated[SignalR[int], StandardReadableFormat.HINTED_SIGNAL]
    dropped: SignalR[int]
    overruns: SignalR[int]
    message: SignalR[str]
    start_recording: TriggerableCommand
    stop_recording: TriggerableCommand
    clear_history: TriggerableCommand
    export_name: SignalRW[str]
    export_path: SignalR[str]

    def __init__(
        self,
        prefix: str,
        *,
        channels: Sequence[str] | None = None,
        export: bool = False,
        export_uri: str | None = None,
        name: str = "",
    ) -> None:
        self.prefix, self.export = prefix, export
        self._run_info = _Run(prefix, export_uri)
        self._given_channels = list(channels) if channels is not None else None
        self.channels: DeviceMap[CollectorChannel] = DeviceMap()
        super().__init__(name=name, connector=PviDeviceConnector(prefix))

    async def connect(
        self, mock: Any = False, timeout: float = 10.0, force_reconnect: bool = False
    ) -> None:  # type: ignore[override]
        """Connect the signals; read the channel list from the device (unless given)."""
        if not mock and not len(self.channels):
            self._run_info.timeout = timeout
            aliases = self._given_channels
            if aliases is None:
                table = await self._run_info.call(lambda client: client.channels())
                aliases = [str(a) for a in table["alias"]]
            for alias in aliases:
                self.channels[alias] = self._channel(alias)
            self.set_name(self.name)
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)

    @AsyncStatus.wrap
    async def add_channel(self, channel: str | Mapping[str, Any]) -> None:
        """Record one more channel (a PV name or a config mapping); it joins :attr:`channels`.

        Its stream is ``<name>-<alias>`` from the next run on (``bps.wait`` on the status
        in a plan). A bad channel fails the status with the collector's reason.
        """
        spec = {"pv": channel} if isinstance(channel, str) else dict(channel)
        alias = validate_config(ChannelConfig, spec).alias
        await self._run_info.call(lambda client: client.add_channel(spec))
        self.channels[alias] = self._channel(alias)
        self.channels[alias].set_name(f"{self.name}-{alias}")

    @AsyncStatus.wrap
    async def remove_channel(self, alias: str) -> None:
        """Record channel ``alias`` no more; it leaves :attr:`channels` (its rows stay)."""
        await self._run_info.call(lambda client: client.remove_channel(alias))
        self.channels.pop(alias, None)

    def _channel(self, alias: str) -> CollectorChannel:
        return (CollectorChannelAsset if self.export else CollectorChannel)(self._run_info, alias)

    def view(self, alias: str) -> HistoryView:
        """A :class:`HistoryView` of a number channel (connect it before use)."""
        return HistoryView(self.prefix, alias, name=f"{self.name or 'collector'}-{alias}-view")

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device; each channel (and its stream) is ``<name>-<alias>``."""
        super().set_name(name, child_name_separator=child_name_separator)
        for alias, channel in self.channels.items():
            channel.set_name(f"{name}-{alias}")

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Clear the history and start recording."""
        self._run_info.histories.clear()
        self._run_info.export_path = ""
        await self.clear_history.trigger()
        await self.start_recording.trigger()
        await _wait_for(self.state, "Recording")

    @AsyncStatus.wrap
    async def complete(self) -> None:
        """Stop recording; with ``export`` write ``<name>-<time>.nxs`` and remember it."""
        await self.stop_recording.trigger()
        await _wait_for(self.state, "Stopped")
        if self.export:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            await self.export_name.set(f"{self.name or 'collector'}-{stamp}.nxs", timeout=600)
            self._run_info.export_path = await self.export_path.get_value()


async def _wait_for(signal: SignalR[str], value: str, timeout: float = 10.0) -> None:
    """ophyd-async's monitor-driven wait, with the PV and the value it never reached."""
    try:
        await wait_for_value(signal, value, timeout=timeout)
    except TimeoutError:
        current = await signal.get_value()
        raise TimeoutError(f"{signal.source} is {current!r}, not {value!r}") from None
