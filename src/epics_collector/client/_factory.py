"""The asynchronous factory client: create, list and destroy devices, locally or remotely."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, Unpack, overload

from epics_collector.client._connection import Connection
from epics_collector.client._devices import (
    HISTORY_PAGE,
    AsyncCollector,
    AsyncDevice,
    AsyncProcessor,
    Binned,
    History,
    ViewArgs,
    every_row,
    view_arguments,
    view_of,
)
from epics_collector.client._errors import AccessDeniedError, ClientError, DeviceError
from epics_collector.client._recordings import (
    RecordingInfo,
    RetentionAction,
    recording_rows,
    retention_rows,
)
from epics_collector.factory import RETIRED_ID, FactoryPv
from epics_collector.process import FactoryProcess
from epics_collector.pva import Network, decode


@dataclass(frozen=True)
class DeviceInfo:
    """One row of a factory's Devices table."""

    name: str
    type: str
    prefix: str
    state: str
    pid: int
    host: str
    started: str
    restarts: int
    message: str


def _device_rows(table: Any) -> list[DeviceInfo]:
    """The rows of a decoded Devices table."""
    texts = {k: [str(v) for v in table[k]] for k in table if k not in ("pid", "restarts")}
    pids, restarts = table["pid"], table["restarts"]
    return [
        DeviceInfo(
            name=texts["name"][i],
            type=texts["type"][i],
            prefix=texts["prefix"][i],
            state=texts["state"][i],
            pid=int(pids[i]),
            host=texts["host"][i],
            started=texts["started"][i],
            restarts=int(restarts[i]),
            message=texts["message"][i],
        )
        for i in range(len(pids))
    ]


LIFECYCLE_TIMEOUT = 30.0  # seconds at least for a Create, Destroy, Restart, Purge, Query


def default_prefix() -> str:
    """``HOST:USER:FAC:`` for a factory started by :meth:`AsyncFactory.local`."""
    parts = [socket.gethostname().split(".")[0], getpass.getuser(), "FAC"]
    return "".join(re.sub(r"[^A-Za-z0-9_-]", "_", part) + ":" for part in parts)


class AsyncFactory:
    """A factory under ``prefix``: the same calls for one on this host or another.

    :meth:`connect` talks to a running factory; :meth:`local` starts one in a child
    process first and stops it on :meth:`close`.
    """

    def __init__(
        self,
        connection: Connection,
        prefix: str,
        process: FactoryProcess | None = None,
        lifecycle_timeout: float | None = None,
    ) -> None:
        self.connection, self.prefix, self.process = connection, prefix, process
        #: Seconds Create, Destroy, Restart and Purge wait for the factory's answer:
        #: they start or stop a process, so by default the connection's timeout but at
        #: least :data:`LIFECYCLE_TIMEOUT`.
        self.lifecycle_timeout = lifecycle_timeout or max(connection.timeout, LIFECYCLE_TIMEOUT)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r})"

    @classmethod
    async def connect(
        cls,
        prefix: str,
        *,
        network: Network | None = None,
        timeout: float = 5.0,
        lifecycle_timeout: float | None = None,
    ) -> Self:
        """A running factory; raises :class:`NoConnectionError` naming the PV if none answers.

        Requests wait ``timeout`` seconds; Create, Destroy, Restart and Purge wait
        ``lifecycle_timeout`` (default: ``timeout``, at least 30 s).
        """
        connection = Connection(network, timeout)
        try:
            await connection.get(prefix + FactoryPv.TYPES)
        except ClientError:
            connection.close()
            raise
        return cls(connection, prefix, lifecycle_timeout=lifecycle_timeout)

    @classmethod
    async def local(
        cls,
        prefix: str | None = None,
        *,
        data_dir: Path | str = "epics-collector-data",
        config: Path | str | None = None,
        network: Network | None = None,
        timeout: float = 5.0,
        restore: bool = False,
    ) -> Self:
        """Start a factory in a child process (data and state under ``data_dir``).

        The factory starts fresh: devices an earlier run created under ``data_dir`` are
        not recreated (their files stay; a device created again under the same name
        starts empty, the earlier files moved to ``DATA_DIR/<name>.<time>``). With
        ``restore=True`` the earlier run's devices come back, as for a factory service.
        It stops when this process exits, even by SIGKILL.
        """
        network = network or Network.from_environment()
        prefix = prefix or default_prefix()
        process = FactoryProcess(
            prefix,
            data_dir=Path(data_dir),
            config=Path(config) if config is not None else None,
            env=network.environ(),
            fresh=not restore,
        )
        await asyncio.to_thread(process.start)
        return cls(Connection(network, timeout), prefix, process)

    async def close(self) -> None:
        """Close the connection; stop the factory (and its devices) if :meth:`local` started it."""
        self.connection.close()
        if self.process is not None:
            await asyncio.to_thread(self.process.stop)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # requests ---------------------------------------------------------------------------------

    async def _call(self, rpc: str, **arguments: str) -> Any:
        try:
            return await self.connection.call(
                self.prefix + rpc, arguments, timeout=self.lifecycle_timeout
            )
        except DeviceError as error:
            if isinstance(error, AccessDeniedError):  # a gateway's or policy's: keep the PV
                raise
            raise DeviceError(str(error).removeprefix(f"{self.prefix}{rpc}: ")) from None

    async def create(
        self, type_name: str, name: str, config: dict[str, Any], prefix: str | None = None
    ) -> AsyncDevice:
        """Create a device of a registered type; its proxy once it serves (``.prefix``)."""
        return self.device_at(await self._create(type_name, name, config, prefix), type_name)

    async def _create(
        self, type_name: str, name: str, config: dict[str, Any], prefix: str | None
    ) -> str:
        arguments = {"type": type_name, "name": name, "config": json.dumps(config)}
        if prefix:
            arguments["prefix"] = prefix
        return str(await self._call(FactoryPv.CREATE, **arguments))

    async def create_collector(
        self, name: str, channels: list[Any], *, prefix: str | None = None, **config: Any
    ) -> AsyncCollector:
        """Create a collector of ``channels``; its proxy once it serves.

        ``channels``: PV names (``"SIM:Counter"``, ``"ca://SIM:Temperature"``) or channel
        dicts (``{"pv": ..., "alias": ..., "kind": ..., "compress": ..., "include":
        ...}``). Any other key of the collector's configuration is a keyword:
        ``capacity``, ``mode`` (ring or stop), ``autostart``, ``trigger``,
        ``stop_after``, ``persist``, ``upload``, ... The keys, their defaults and limits
        are in the Collector reference's *Configuration* (reference/collector.md), and
        ``epics-collector schema collector`` prints them as a JSON schema. A config the
        factory refuses raises :class:`DeviceError` naming the field.
        """
        made = await self._create("collector", name, {"channels": channels, **config}, prefix)
        return AsyncCollector(self.connection, made)

    async def create_processor(
        self,
        name: str,
        inputs: dict[str, str],
        processor: str | dict[str, Any],
        *,
        params: dict[str, Any] | None = None,
        prefix: str | None = None,
        **config: Any,
    ) -> AsyncProcessor:
        """Create a processing device; its proxy once it serves.

        ``inputs``: input name to source PV (``{"a": "SIM:Counter"}``). ``processor``: a
        registered processor's name (``calc``, ``stats``, ``roi``, ``pid``, ``fit``, or a
        plugin's) or ``{"name": ..., "params": {...}}``; ``params`` are merged into its
        parameters. Other keys of the processing configuration are keywords:
        ``trigger`` (``any``, ``all``, an input name, or ``{"period": s}``),
        ``outputs``, ``feedback``, ``timeout``, ``enable``, ... They are in the how-to
        *Process PVs* (how-to/process-pvs.md), the processors' parameters in its
        *Built-in processors*; ``epics-collector schema processing`` prints the schema.
        """
        spec: dict[str, Any] = {"name": processor} if isinstance(processor, str) else {**processor}
        if params:
            spec["params"] = {**spec.get("params", {}), **params}
        body = {"inputs": inputs, "processor": spec, **config}
        made = await self._create("processing", name, body, prefix)
        return AsyncProcessor(self.connection, made)

    async def destroy(self, name: str) -> None:
        """Stop a device and forget it (a collector's recording is kept, retired)."""
        await self._call(FactoryPv.DESTROY, name=name)

    async def restart(self, name: str) -> None:
        """Restart a device's process (also one marked Failed)."""
        await self._call(FactoryPv.RESTART, name=name)

    async def types(self) -> list[str]:
        """The device types this factory may create."""
        return [str(t) for t in await self.connection.get(self.prefix + FactoryPv.TYPES)]

    async def devices(self) -> list[DeviceInfo]:
        """The factory's devices and their state."""
        return _device_rows(await self.connection.get(self.prefix + FactoryPv.DEVICES))

    async def watch_devices(
        self, on_disconnect: Callable[[], None] | None = None
    ) -> AsyncIterator[list[DeviceInfo]]:
        """The device list now and after every change (a monitor of ``Devices``).

        It goes on until the caller stops iterating. A lost factory calls
        ``on_disconnect``; the list comes again when the factory is back.
        """
        name = self.prefix + FactoryPv.DEVICES
        async for value in self.connection.monitor_values(name, 16, on_disconnect):
            yield _device_rows(decode(value))

    # recordings -------------------------------------------------------------------------

    async def recordings(self) -> list[RecordingInfo]:
        """Every recording of the factory: its collectors' (live) and kept ones (retired)."""
        table = await self.connection.get(self.prefix + FactoryPv.RECORDINGS)
        return recording_rows(table)

    @overload
    async def history(self, recording: str, channel: str) -> History: ...

    @overload
    async def history(
        self, recording: str, channel: str, **view: Unpack[ViewArgs]
    ) -> History | Binned: ...

    async def history(
        self, recording: str, channel: str, **view: Unpack[ViewArgs]
    ) -> History | Binned:
        """A channel's history in a recording (its id in :meth:`recordings`).

        A live recording is read from its collector (see :meth:`AsyncCollector.history`);
        a retired one through the factory's ``Query``: without keywords every row, read
        page by page (by position: every row once, or an error), else as a collector's
        Query with those keywords.
        """
        if not RETIRED_ID.fullmatch(recording):  # a live collector's name
            return await (await self.collector(recording)).history(channel, **view)
        arguments = {"recording": recording, "alias": channel}
        if any(value is not None for value in view.values()):
            return view_of(await self._call(FactoryPv.QUERY, **arguments, **view_arguments(view)))
        return await every_row(
            lambda **more: self._call(FactoryPv.QUERY, **arguments, **more), HISTORY_PAGE
        )

    async def purge(self, recording: str) -> dict[str, int]:
        """Delete a retired recording's files (needs the ``delete`` right); rows and bytes."""
        table = await self._call(FactoryPv.PURGE, recording=recording)
        return {"rows": int(table["rows"][0]), "bytes": int(table["bytes"][0])}

    async def retention(self, dry_run: bool = True) -> list[RetentionAction]:
        """Apply the factory's retention policy and disk budget now; what was done.

        ``dry_run`` (the default) lists what would be done and changes nothing;
        applying needs the factory's ``delete`` right.
        """
        pv = FactoryPv.RETENTION_DRY_RUN if dry_run else FactoryPv.RETENTION_APPLY
        return retention_rows(await self._call(pv))

    def device_at(self, prefix: str, type_name: str = "") -> AsyncDevice:
        """A proxy of the device under ``prefix`` (a collector's or processor's by type).

        Uses this factory's connection; nothing is asked of the device yet.
        """
        kind = {"collector": AsyncCollector, "processing": AsyncProcessor}
        return kind.get(type_name, AsyncDevice)(self.connection, prefix)

    async def device(self, name: str) -> AsyncDevice:
        """A proxy of the device called ``name`` (a collector or processor proxy by type)."""
        for info in await self.devices():
            if info.name == name:
                return self.device_at(info.prefix, info.type)
        raise ClientError(f"{self.prefix} no device named {name!r}")

    async def collector(self, name: str) -> AsyncCollector:
        """The collector called ``name``."""
        device = await self.device(name)
        if not isinstance(device, AsyncCollector):
            raise ClientError(f"{name} is not a collector")
        return device

    async def processor(self, name: str) -> AsyncProcessor:
        """The processing device called ``name``."""
        device = await self.device(name)
        if not isinstance(device, AsyncProcessor):
            raise ClientError(f"{name} is not a processing device")
        return device
