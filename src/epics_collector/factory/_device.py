"""The factory device: creates, destroys and supervises devices on its host over PVAccess."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.core import (
    AttrR,
    Caller,
    Device,
    Operation,
    RpcError,
    Severity,
    Sources,
    Table,
    Waveform,
    load_device_type,
    refusal,
    rpc,
)
from epics_collector.factory._claims import ClaimRefusedError, PrefixClaims, ServerFinder
from epics_collector.factory._config import DeviceSpec, FactoryConfig
from epics_collector.factory._form import CreateForm
from epics_collector.factory._names import FactoryPv
from epics_collector.factory._recording_pvs import RecordingPvs
from epics_collector.factory._requests import Requests
from epics_collector.factory._retention import RetentionPvs
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
    parts = (RecordingPvs, RetentionPvs, CreateForm)

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
        #: Live and retired recordings under the data directory: Recordings, Query, Purge.
        self.recorded = self.add_part(
            RecordingPvs(self.config, self.data_dir, self._live, self.report, self.call_soon)
        )
        #: The retention policy and the disk budget, applied to the recordings.
        self.retention = self.add_part(
            RetentionPvs(
                self.config,
                self.recorded.recordings,
                self._live,
                self.report,
                self.recorded.refresh,
            )
        )
        self.form = self.add_part(CreateForm(self.allowed_types, self._create_for, self.report))
        for attr in self.form.fields:
            self.add_pv(attr)
        self._refresh()

    async def _create_for(self, caller: Caller, **arguments: str) -> str:
        """Create as the Create RPC does, for ``caller`` (the create form's put)."""
        return await self.create.method(self, **arguments, caller=caller)

    def _live(self) -> dict[str, str]:
        """The devices that run now: name -> type (a collector's recording is live)."""
        return {name: s.spec.type for name, s in self._supervisors.items()}

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
        config.update(self._retention_for(spec, config))
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

    def _retention_for(self, spec: DeviceSpec, config: dict[str, Any]) -> dict[str, Any]:
        """The factory's retention policy, for a device that keeps its rows on disk."""
        fields = load_device_type(spec.type).config_model.model_fields
        if "retention" not in fields or not config.get("persist"):
            return {}
        return {
            "retention": [rule.model_dump(mode="json") for rule in self.config.retention],
            "retention_every": self.config.retention_every,
        }

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
                kept = await asyncio.to_thread(self.recorded.recordings.retire, spec.name)
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
        await self.recorded.refresh()
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
            kept = await asyncio.to_thread(self.recorded.recordings.retire, supervisor.spec.name)
            await self.recorded.refresh()
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
                    await asyncio.to_thread(self.recorded.recordings.retire, spec.name)
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
        await self.recorded.refresh()
        if problems:
            self.report("; ".join(problems), Severity.MINOR)
        else:
            self.report(f"running {len(self._supervisors)} devices")

    async def on_stop(self) -> None:
        """Stop every device process; the list stays stored for the next start."""
        await asyncio.gather(*(s.stop() for s in self._supervisors.values()))
        self.retention.close()
        self.recorded.close()
        self.state_lock.release()
