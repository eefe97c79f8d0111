"""The factory device: creates, destroys and supervises devices on its host over PVAccess."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector import parse_query
from epics_collector.core import (
    MAX_CONFIG_CHARS,
    AttrR,
    AttrRW,
    BusyError,
    Caller,
    Device,
    Enum,
    Int,
    Operation,
    ReadPool,
    RpcError,
    Severity,
    Sources,
    String,
    Table,
    Waveform,
    command,
    current_caller,
    load_device_type,
    refusal,
    rpc,
    scan,
)
from epics_collector.factory._claims import ClaimRefusedError, PrefixClaims, ServerFinder
from epics_collector.factory._config import DeviceSpec, FactoryConfig
from epics_collector.factory._names import FactoryPv
from epics_collector.factory._recordings import Listed, Recordings
from epics_collector.factory._requests import Requests
from epics_collector.factory._state_files import (
    PidFile,
    StateDirLock,
    device_command,
    open_log,
    pid_file_names,
    write_config,
)
from epics_collector.factory._store import DeviceStore
from epics_collector.factory._supervisor import LaunchError, Supervisor
from epics_collector.process import MODULE, ManagedProcess, device_arguments
from epics_collector.screens import write_screen

RECORDING_COLUMNS: dict[str, Any] = {
    "id": str,
    "name": str,
    "prefix": str,
    "pvs": str,
    "first": np.float64,
    "last": np.float64,
    "rows": np.int64,
    "bytes": np.int64,
    "state": str,
    "created": np.float64,
    "destroyed": np.float64,
}
RECORDED_CHANNEL_COLUMNS: dict[str, Any] = {
    "recording": str,
    "alias": str,
    "pv": str,
    "kind": str,
    "rows": np.int64,
    "first": np.float64,
    "last": np.float64,
    "state": str,
}
log = logging.getLogger(__name__)
DEVICE_COLUMNS: dict[str, Any] = {
    "name": str,
    "type": str,
    "prefix": str,
    "state": str,
    "pid": np.int32,
    "host": str,
    "started": str,
    "restarts": np.int32,
    "message": str,
}


class FactoryStates(StrEnum):
    """States of a factory."""

    STARTING = "Starting"
    RUNNING = "Running"
    FAULT = "Fault"


def _iso(seconds: float) -> str:
    if not seconds:
        return ""
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.isoformat(timespec="seconds")


class Factory(Device[FactoryConfig]):
    """Creates registered device types on request, each in its own supervised process.

    The device list is kept in ``STATE_DIR/devices.json`` and recreated when the factory
    starts (unless ``restore`` is false: a fresh factory); each device writes under
    ``DATA_DIR/<name>`` and logs to ``STATE_DIR/logs/<name>.log``. A destroyed
    collector's recording is kept (``DATA_DIR/<name>.<time>``, a retired recording: see
    :mod:`._recordings`), listed in Recordings and read with Query; a device created
    under a name used before starts empty beside it.
    """

    config_model = FactoryConfig
    States = FactoryStates

    serves_outside = True  # the claims of its devices' prefixes

    devices = AttrR(
        Table(columns=DEVICE_COLUMNS),
        name=FactoryPv.DEVICES,
        description=(
            "One row per device: name, type, prefix, state, pid, host, started (UTC, ISO "
            "8601), restarts, message (the supervisor's, else the device's Message while "
            "it is MAJOR or worse)"
        ),
    )
    types = AttrR(
        Waveform(dtype=str),
        name=FactoryPv.TYPES,
        description="Device types this factory may create",
    )
    recordings_table = AttrR(
        Table(columns=RECORDING_COLUMNS),
        name=FactoryPv.RECORDINGS,
        description=(
            "One row per recording, live (a collector of this factory) or retired (kept "
            "after its collector was destroyed): id (what Query and Purge take), name, "
            "prefix, pvs (comma-separated), first and last (POSIX s), rows, bytes on disk, "
            "state (live, retired), created and destroyed (POSIX s)"
        ),
    )
    recorded_channels = AttrR(
        Table(columns=RECORDED_CHANNEL_COLUMNS),
        name=FactoryPv.RECORDED_CHANNELS,
        description=(
            "One row per channel of every recording: recording (its id), alias, pv, kind, "
            "rows, first and last (POSIX s), state (live, retired)"
        ),
    )
    query_busy = AttrR(
        Int(),
        name=FactoryPv.QUERY_BUSY,
        description=(
            "Query calls answered busy because more were asked at once than reads allows "
            "(told to retry); MINOR alarm when > 0"
        ),
    )

    def __init__(
        self,
        config: FactoryConfig | Mapping[str, Any],
        *,
        data_dir: Path | None = None,
        sources: Sources | None = None,
        state_dir: Path | None = None,
        declared: Iterable[DeviceSpec] = (),
        restore: bool = True,
        finder: ServerFinder | None = None,
        state_lock: StateDirLock | None = None,
    ) -> None:
        super().__init__(config, data_dir=data_dir, sources=sources)
        #: The prefixes this factory's devices run under, claimed on the network.
        self.claims = PrefixClaims(self, finder, self.config.claim_wait)
        self.state_dir = state_dir or self.data_dir / ".factory"
        #: Held for the factory's life: a second factory on this state dir refuses to start.
        #: Given when the caller took it already (before looking at the network).
        self.state_lock = state_lock or StateDirLock(self.state_dir)
        if state_lock is None:
            self.state_lock.acquire()
        self.restore = restore
        self.store = DeviceStore(self.state_dir)
        self.declared = list(declared)
        self.host = socket.gethostname()
        self._supervisors: dict[str, Supervisor] = {}
        #: Checks requests; holds the names and prefixes of devices being created.
        self.requests = Requests(self.config, self.data_dir, lambda: self.prefix, self._supervisors)
        self.allowed_types = self.requests.allowed_types
        self._unrestored: list[DeviceSpec] = []  # kept stored, e.g. after a type was disallowed
        self.types.set(np.array(self.allowed_types, dtype=object))
        #: Live and retired recordings under the data directory (file work in threads).
        self.recordings = Recordings(
            self.data_dir, self.config.recordings_cached, self._recording_damaged
        )
        self.reads = ReadPool(self.config.reads, name="recordings")
        self.query_busy.set(0)
        self._list_recordings([])
        self._add_form()
        self._refresh()

    def _add_form(self) -> None:
        """The create form: NewType (the allowed types), NewName, NewConfig, CreateNew."""
        self.new_type = self.add_pv(
            AttrRW(
                Enum(choices=self.allowed_types or ["(none)"]),
                name=FactoryPv.NEW_TYPE,
                description="Create form: device type",
                access=Operation.FACTORY,
            )
        )
        self.new_name = self.add_pv(
            AttrRW(
                String(max_length=40),
                name=FactoryPv.NEW_NAME,
                description="Create form: name",
                access=Operation.FACTORY,
            )
        )
        self.new_config = self.add_pv(
            AttrRW(
                String(max_length=MAX_CONFIG_CHARS),
                name=FactoryPv.NEW_CONFIG,
                description="Create form: configuration (JSON or YAML)",
                access=Operation.FACTORY,
            )
        )
        self.new_type.set(self.new_type.datatype.initial)
        self.new_name.set("")
        self.new_config.set("")

    @command(name=FactoryPv.CREATE_NEW, access=Operation.FACTORY)
    async def create_from_form(self) -> None:
        """Create the device the form describes (put 1), as Create would; see Message."""
        caller = current_caller.get()
        prefix = await self.create.method(
            self,
            type=self.new_type.value,
            name=self.new_name.value,
            config=self.new_config.value,
            caller=caller,
        )
        self.report(f"created {self.new_name.value} at {prefix}")

    # the device list ------------------------------------------------------------------------

    def _refresh(self) -> None:
        rows = list(self._supervisors.values())
        self.devices.set(
            {
                "name": [s.spec.name for s in rows],
                "type": [s.spec.type for s in rows],
                "prefix": [s.spec.prefix for s in rows],
                "state": [s.state for s in rows],
                "pid": [s.pid for s in rows],
                "host": [self.host] * len(rows),
                "started": [_iso(s.started) for s in rows],
                "restarts": [s.restarts for s in rows],
                "message": [s.reason or s.alarm for s in rows],
            }
        )

    def _save(self) -> None:
        specs = [s.spec for s in self._supervisors.values()]
        self.store.save(specs + [s for s in self._unrestored if s.name not in self._supervisors])

    def _launch(self, spec: DeviceSpec) -> ManagedProcess:
        """Start the process of ``spec`` (from the event loop's thread, which outlives it)."""
        # the factory's policy, never one a client sent (see _spec)
        try:
            config = {**self.requests.resolved(spec.config), "access": self.access.model_dump()}
        except RpcError as error:  # the operator removed a destination it used
            raise LaunchError(str(error)) from None
        args = device_arguments(
            spec.type,
            spec.prefix,
            config,
            data_dir=self.data_dir / spec.name,
            parent_pid=os.getpid(),
            config_file=self.state_dir / "configs" / f"{spec.name}.json",
            write=functools.partial(write_config, self.state_dir),
        )
        opener = functools.partial(open_log, self.state_dir, spec.name)
        return ManagedProcess(MODULE, args, log_opener=opener).start()

    def _supervisor(self, spec: DeviceSpec) -> Supervisor:
        cls = load_device_type(spec.type)
        return Supervisor(
            spec,
            launch=self._launch,
            policy=self.config.restart,
            ready_timeout=self.config.ready_timeout,
            sources=self.sources,
            state_names=[str(state) for state in cls.States],
            on_change=self._refresh,
            hung_after=self.config.hung_after,
            pid_file=self._pid_file(spec.prefix, spec.name),
        )

    def _pid_file(self, prefix: str, name: str) -> PidFile:
        return PidFile(self.state_dir, name)

    def _stop_leftovers(self, stored: list[DeviceSpec]) -> tuple[list[str], list[str]]:
        """Stop device processes an earlier instance of this factory left running.

        Only a stored device's own command is ever killed (see :class:`PidFile`).
        Returns what was stopped, and why pid files were not trusted.
        """
        specs = {spec.name: spec for spec in stored}
        stopped: list[str] = []
        refused: list[str] = []
        for name in pid_file_names(self.state_dir):
            spec = specs.get(name)
            pid_file = PidFile(self.state_dir, name)
            if spec is None:
                pid_file.clear()  # no device of that name: nothing of ours to stop
                continue
            pid = pid_file.stop_leftover(device_command(spec.type, spec.prefix))
            if pid is not None:
                stopped.append(f"{name} (pid {pid})")
            if pid_file.refusal is not None:
                refused.append(pid_file.refusal)
        return stopped, refused

    # RPCs ------------------------------------------------------------------------------------

    @rpc(name=FactoryPv.CREATE, with_caller=True, access=Operation.FACTORY)
    async def create(
        self,
        type: str = "",  # noqa: A002 (the contract's argument name)
        name: str = "",
        config: str = "",
        prefix: str = "",
        *,
        caller: Caller,
    ) -> str:
        """Create a device: arguments type, name, config (JSON), optional prefix."""
        spec = await self.requests.spec(type, name, config, prefix, caller)
        if spec.config.get("feedback") and not self.allows(Operation.FEEDBACK, caller):
            denied = refusal(
                Operation.FEEDBACK, "Create with feedback", caller.host, caller.account
            )
            raise RpcError(str(denied))
        started = False
        with self.requests.reserved(spec):
            try:
                await self.claims.claim(spec.prefix, self.requests.pv_names(spec))
                kept = await asyncio.to_thread(self.recordings.retire, spec.name)
                supervisor = self._supervisor(spec)
                await supervisor.start()
                started = True
            except ClaimRefusedError as error:
                raise RpcError(str(error)) from None
            except LaunchError as error:
                raise RpcError(f"{spec.name} did not start: {error}") from None
            finally:
                if not started:
                    self.claims.release(spec.prefix)
        self._supervisors[spec.name] = supervisor
        self._save()
        self._refresh()
        earlier = f"; the earlier {spec.name}'s files are in {kept}" if kept else ""
        self.report(f"created {spec.name} ({spec.type}) at {spec.prefix}{earlier}")
        self._write_screen(spec)
        await self._refresh_recordings()
        return spec.prefix

    @rpc(name=FactoryPv.DESTROY, with_caller=True, access=Operation.FACTORY)
    async def destroy(self, name: str = "", *, caller: Caller) -> str:
        """Stop a device's process and forget it (its files stay): argument name."""
        supervisor = self.requests.named(name)
        await supervisor.stop(final=True)  # waits for a Restart under way, and the exit
        if self._supervisors.get(supervisor.spec.name) is not supervisor:
            raise RpcError(f"{supervisor.spec.name} was destroyed meanwhile")
        del self._supervisors[supervisor.spec.name]
        self.claims.release(supervisor.spec.prefix)
        self._save()
        self._refresh()
        kept = None
        if supervisor.spec.type == "collector":  # its recording stays, retired
            kept = await asyncio.to_thread(self.recordings.retire, supervisor.spec.name)
            await self._refresh_recordings()
        done = f"destroyed {supervisor.spec.name}"
        if kept:
            done += f"; its recording is kept as {kept} (see Recordings)"
        self.report(done)
        return done

    @rpc(name=FactoryPv.RESTART, with_caller=True, access=Operation.FACTORY)
    async def restart(self, name: str = "", *, caller: Caller) -> str:
        """Restart a device's process now (also one marked Failed): argument name."""
        supervisor = self.requests.named(name)
        try:
            await supervisor.restart()  # one at a time per device (the supervisor's lock)
        except LaunchError as error:
            raise RpcError(f"{supervisor.spec.name} did not restart: {error}") from None
        return f"{supervisor.spec.name}: {supervisor.state}"

    # recordings ----------------------------------------------------------------------------

    @rpc(name=FactoryPv.QUERY, access=Operation.READ, with_caller=True)
    async def query(
        self,
        recording: str = "",
        alias: str = "",
        start: Any = "",
        end: Any = "",
        points: Any = "",
        operator: Any = "",
        after: Any = "",
        epoch: Any = "",
        *,
        caller: Caller,
    ) -> dict[str, Any]:
        """A retired recording's history as an NTTable: recording (its id), then as Query.

        The arguments after ``recording`` are a collector's Query's (alias or source PV,
        start, end, points, operator, and a page's cursor), with the same answers;
        computed on the read pool (config ``reads``), refused "busy" beyond it.
        """
        arguments = {"start": start, "end": end, "points": points, "operator": operator}
        arguments |= {"after": after, "epoch": epoch}
        try:
            return await self.reads.run(
                caller.host or "local", self._read, str(recording), str(alias), arguments
            )
        except BusyError:
            self.query_busy.set(self.reads.busy, severity=Severity.MINOR)
            raise

    def _read(self, recording: str, alias: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Compute a Query of a retired recording (on a read worker)."""
        stored, alias = self.recordings.channel(recording, alias)
        request = parse_query(arguments, stored.span(alias), stored.channels[alias][1])
        return stored.query(alias, request, time.monotonic() + self.config.reads.timeout)

    def _recording_damaged(self, recording: str, rows: int) -> None:
        """A retired recording read with damaged chunks (a read worker): say so, loudly."""
        text = (
            f"retired recording {recording}: {rows} rows are in damaged chunks and cannot "
            "be read; the rest is served"
        )
        log.error(text)
        self.call_soon(self.report, text, Severity.MAJOR)

    @rpc(name=FactoryPv.PURGE, access=Operation.DELETE, with_caller=True)
    async def purge(self, recording: str = "", name: str = "", *, caller: Caller) -> Any:
        """Delete a retired recording's files: recording (its id), optionally name.

        Needs the ``delete`` right. Answers with the rows and bytes removed; a live
        recording (a collector that runs) is refused: destroy it first.
        """
        recording = str(recording)
        if name and recording.partition(".")[0] != name:
            raise RpcError(f"{recording[:80]!r} is not a recording of {str(name)[:40]!r}")
        if recording in self._supervisors:
            raise RpcError(
                f"{recording} is a live recording (its collector runs): destroy the "
                "collector first; its recording is then retired and can be purged"
            )
        removed = await asyncio.to_thread(self.recordings.purge, recording)
        await self._refresh_recordings()
        who = f"{caller.account or '(no user)'}@{caller.host or 'local'}"
        self.report(
            f"purged {recording}: {removed['rows']} rows, {removed['bytes']} bytes (by {who})"
        )
        return {key: [value] for key, value in removed.items()}

    @scan(10.0)
    async def list_recordings(self) -> None:
        """Refresh Recordings and RecordedChannels (live rows grow)."""
        await self._refresh_recordings()

    async def _refresh_recordings(self) -> None:
        live = {name: s.spec.type for name, s in self._supervisors.items()}
        found = await asyncio.to_thread(self.recordings.catalogue, live)
        self._list_recordings(found)

    def _list_recordings(self, found: list[Listed]) -> None:
        """Post the two tables of ``found`` (on the event loop)."""
        self.recordings_table.set(
            {
                "id": [r.id for r in found],
                "name": [r.name for r in found],
                "prefix": [r.prefix for r in found],
                "pvs": [",".join(c.pv for c in r.summary.channels) for r in found],
                "first": [r.summary.first for r in found],
                "last": [r.summary.last for r in found],
                "rows": [r.summary.rows for r in found],
                "bytes": [r.summary.bytes for r in found],
                "state": [r.state for r in found],
                "created": [r.time("created") for r in found],
                "destroyed": [r.time("destroyed") for r in found],
            }
        )
        channels = [(r, c) for r in found for c in r.summary.channels]
        self.recorded_channels.set(
            {
                "recording": [r.id for r, _ in channels],
                "alias": [c.alias for _, c in channels],
                "pv": [c.pv for _, c in channels],
                "kind": [c.kind for _, c in channels],
                "rows": [c.rows for _, c in channels],
                "first": [c.first for _, c in channels],
                "last": [c.last for _, c in channels],
                "state": [r.state for r, _ in channels],
            }
        )

    def _write_screen(self, spec: DeviceSpec | None) -> None:
        """Write the Phoebus screen of a device (or of the factory) if ``screens`` is set."""
        if self.config.screens is None:
            return
        directory = self.data_dir / self.config.screens
        try:
            if spec is None:
                write_screen(self, self.prefix, directory, f"Factory {self.prefix}")
            else:
                cls = load_device_type(spec.type)
                device = cls(spec.config, data_dir=self.data_dir / spec.name)
                write_screen(device, spec.prefix, directory, f"{spec.name} ({spec.type})")
        except Exception as error:  # a screen is a convenience: report, never fail
            self.report(f"screen not written: {error}", Severity.MINOR)

    # lifecycle ---------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Recreate the stored devices and those declared by ``serve FILE``."""
        self.set_state(FactoryStates.STARTING)
        specs, problems = self.store.load()
        stored = list(specs)
        if not self.restore:
            if specs:
                problems.append(
                    f"started fresh: {len(specs)} stored devices not recreated "
                    f"({', '.join(s.name for s in specs)}; their files stay)"
                )
            specs = []
        leftovers, refused = await asyncio.to_thread(self._stop_leftovers, stored)
        if leftovers:
            problems.append(f"stopped devices left running before: {', '.join(leftovers)}")
        problems.extend(refused)
        if not self.restore:  # forgotten collectors: their recordings are kept, retired
            for spec in stored:
                if spec.type == "collector" and spec.name not in {d.name for d in self.declared}:
                    await asyncio.to_thread(self.recordings.retire, spec.name)
        wanted = {spec.name: spec for spec in specs}
        wanted.update({spec.name: spec for spec in self.declared})
        for name, spec in wanted.items():
            try:
                self.requests.device_type(spec.type)
                self._supervisors[name] = self._supervisor(spec)
                self.claims.hold(spec.prefix)
            except RpcError as error:
                self._unrestored.append(spec)
                problems.append(f"{name}: not restored: {error}")
        self._save()
        await asyncio.gather(*(s.resume() for s in self._supervisors.values()))
        self.set_state(FactoryStates.RUNNING)
        self._refresh()
        for spec in [None, *(s.spec for s in self._supervisors.values())]:
            self._write_screen(spec)
        await self._refresh_recordings()
        if problems:
            self.report("; ".join(problems), Severity.MINOR)
        else:
            self.report(f"running {len(self._supervisors)} devices")

    async def on_stop(self) -> None:
        """Stop every device process; the list stays stored for the next start."""
        await asyncio.gather(*(s.stop() for s in self._supervisors.values()))
        self.reads.close()
        self.state_lock.release()
