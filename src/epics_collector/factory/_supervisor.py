"""One device process under supervision: launched, watched, restarted with back-off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

from epics_collector.core import Sources, Subscription, Update, shorten
from epics_collector.factory._config import DeviceSpec, RestartPolicy
from epics_collector.factory._state_files import PidFile
from epics_collector.process import READY_LINE, ManagedProcess

log = logging.getLogger(__name__)
WATCH_PERIOD = 0.1  # s between two looks at a running device's Heartbeat (not its exit)


class Phase(StrEnum):
    """Where a supervised device is in its life (shown in the factory's Devices table)."""

    STARTING = "Starting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    HUNG = "Hung"
    FAILED = "Failed"
    STOPPED = "Stopped"


class LaunchError(RuntimeError):
    """A device process exited or stayed silent instead of serving its PVs."""


def exit_reason(process: ManagedProcess) -> str:
    """Why a child ended, for humans: the signal or exit code and its last output line."""
    code = process.popen.returncode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    text = f"exit code {code}"
    lines = [line for line in process.output().splitlines() if line.strip()]
    return f"{text}: {shorten(lines[-1], 200)}" if lines else text


class _StateListener:
    """Receives the device's State PV (on a transport thread) and hands it to the loop.

    One listener per launched process (``launch`` numbers them), so a late update of a
    dead process is never taken for the new one.
    """

    def __init__(self, supervisor: Supervisor, launch: int) -> None:
        self._supervisor, self._launch = supervisor, launch
        self._loop = asyncio.get_running_loop()

    def on_update(self, update: Update) -> None:
        self._loop.call_soon_threadsafe(self._supervisor.state_update, self._launch, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        if not connected:
            self._loop.call_soon_threadsafe(self._supervisor.state_lost, self._launch)

    def on_loss(self, missing: int | None) -> None:
        """Only the newest State matters; lost intermediate states are harmless."""


class _BeatListener(_StateListener):
    """Receives the device's Heartbeat: each update is a sign of life."""

    def on_update(self, update: Update) -> None:
        self._loop.call_soon_threadsafe(self._supervisor.beat, self._launch)

    def on_connection(self, connected: bool, reason: str) -> None:
        """A lost channel shows as silence (the hung check), or as an exit."""


class _MessageListener(_StateListener):
    """Receives the device's Message: a MAJOR or worse one shows in the Devices row."""

    def on_update(self, update: Update) -> None:
        self._loop.call_soon_threadsafe(self._supervisor.message_update, self._launch, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        """A lost device shows in its State."""


class Supervisor:
    """Runs one device process and keeps it running.

    Ready means the child printed its ready line and its ``State`` PV answered the
    factory's own client. A child that dies is restarted after 1, 2, 4 ... s (see
    :class:`RestartPolicy`); after too many restarts in a row it is left ``Failed``.
    A child whose Heartbeat (seen at least once) stays silent for ``hung_after`` seconds
    is ``Hung``: it is killed (SIGKILL: a hung process may not run its SIGTERM handler)
    and restarted like a crash. Its pid is kept in ``pid_file`` while it runs, so a
    factory started after a crash of this one stops a child left behind.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        launch: Callable[[DeviceSpec], ManagedProcess],
        policy: RestartPolicy,
        ready_timeout: float,
        sources: Sources | None,
        state_names: Sequence[str],
        on_change: Callable[[], None],
        hung_after: float = 10.0,
        pid_file: PidFile | None = None,
    ) -> None:
        self.spec, self.policy, self.ready_timeout = spec, policy, ready_timeout
        self._launch_process, self._on_change = launch, on_change
        self._sources, self._state_names = sources, list(state_names)
        self.phase = Phase.STOPPED
        self.process: ManagedProcess | None = None
        self.started = 0.0  # wall time of the current process's start
        self.restarts = 0
        self.reason = ""
        self.alarm = ""  # the device's Message while it is MAJOR or worse
        self.device_state = ""
        self._state_seen = asyncio.Event()  # set when the device's State first answers
        self._launches = 0
        self._up_since = 0.0
        self._in_a_row = 0
        self._task: asyncio.Task[None] | None = None
        #: One lifecycle operation (start, stop, restart) at a time; ``closed`` by Destroy.
        self._lifecycle = asyncio.Lock()
        self._closing = False  # a Destroy asked: queued Restarts give way (then closed)
        self.closed = False
        self._subscriptions: list[Subscription] = []
        self.hung_after, self.pid_file = hung_after, pid_file
        self._last_beat: float | None = None  # monotonic time of this launch's last beat

    # what the factory shows -----------------------------------------------------------

    @property
    def pid(self) -> int:
        """The running process's id, 0 when there is none."""
        return self.process.pid if self.process is not None and self.process.running else 0

    @property
    def state(self) -> str:
        """The device's own State while running, else the supervision phase."""
        if self.phase == Phase.RUNNING and self.device_state:
            return self.device_state
        return str(self.phase)

    def state_update(self, launch: int, update: Update) -> None:
        """The device's State PV changed (called on the event loop)."""
        if launch != self._launches:
            return
        index = int(update.value)
        names = self._state_names
        self.device_state = names[index] if 0 <= index < len(names) else str(index)
        self._state_seen.set()
        self._on_change()

    def message_update(self, launch: int, update: Update) -> None:
        """The device's Message changed (on the event loop): kept when MAJOR or worse."""
        if launch != self._launches:
            return
        alarm = str(update.value) if update.severity >= 2 else ""
        if alarm != self.alarm:
            self.alarm = alarm
            self._on_change()

    def beat(self, launch: int) -> None:
        """The device's Heartbeat changed (called on the event loop)."""
        if launch == self._launches:
            self._last_beat = time.monotonic()

    def state_lost(self, launch: int) -> None:
        """The factory's client lost the device's State PV."""
        if launch == self._launches:
            self.device_state = ""
            self._on_change()

    def _set(self, phase: Phase, reason: str = "") -> None:
        self.phase, self.reason = phase, reason
        if reason:
            log.info("%s: %s (%s)", self.spec.name, phase, reason)
        self._on_change()

    # lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Launch the device and wait until it serves its PVs, then keep it running.

        Raises :class:`LaunchError` (nothing left running) if this first launch fails.
        """
        async with self._lifecycle:
            await self._launch()
        self._task = asyncio.create_task(self._run(None), name=f"supervise {self.spec.name}")

    async def resume(self) -> None:
        """Like :meth:`start`, but a failed launch is retried like a crash (factory start)."""
        async with self._lifecycle:
            await self._resume()

    async def _resume(self) -> None:
        try:
            await self._launch()
            failure = None
        except LaunchError as error:
            failure = str(error)
        self._task = asyncio.create_task(self._run(failure), name=f"supervise {self.spec.name}")

    def _subscribe(self) -> None:
        """Watch State with a new subscription (one per launched process).

        A fresh channel finds the new process at once; a reused one would wait for its
        next, backed-off, search.
        """
        self._close_subscription()
        self._last_beat = None
        if self._sources is not None:
            self._launches += 1
            for pv, listener in (
                ("State", _StateListener(self, self._launches)),
                ("Heartbeat", _BeatListener(self, self._launches)),
                ("Message", _MessageListener(self, self._launches)),
            ):
                url = f"pva://{self.spec.prefix}{pv}"
                self._subscriptions.append(self._sources.subscribe(url, listener, queue_size=4))

    async def stop(self, *, final: bool = False) -> None:
        """Stop supervising and stop the process (SIGTERM, then kill); wait for its exit.

        Lifecycle operations of one device run one at a time (two operators pressing
        Restart start one process after the other, never two at once); ``final``
        (Destroy) refuses every later one.
        """
        if final:  # Restarts queued behind this Destroy give way to it
            self._closing = True
        async with self._lifecycle:
            await self._stop()
            self.closed = self.closed or final

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_subscription()
        await self._stop_process()
        self._set(Phase.STOPPED)

    async def restart(self) -> None:
        """Stop and launch again now, forgetting earlier crashes (also from Failed)."""
        async with self._lifecycle:
            if self.closed or self._closing:  # a Destroy waits: no launch before it
                raise LaunchError("it was destroyed meanwhile")
            await self._stop()
            self._in_a_row = 0
            await self._resume()

    def _close_subscription(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.close()
        self.device_state = self.alarm = ""

    async def _stop_process(self) -> None:
        process = self.process
        if process is not None:
            await asyncio.to_thread(process.stop)
        if self.pid_file is not None:
            self.pid_file.clear()

    async def _launch(self, note: str = "") -> None:
        self._set(Phase.STARTING, note)
        self.started = time.time()
        self.process = process = self._launch_process(self.spec)
        if self.pid_file is not None:
            self.pid_file.write(process.pid, process.command)
        deadline = time.monotonic() + self.ready_timeout
        try:  # woken by the ready line, or at once by an exit (the pipe closes)
            line = await process.wait_notified_async(self.ready_timeout)
        except TimeoutError:
            await self._stop_process()
            raise LaunchError(f"no PVs served after {self.ready_timeout} s") from None
        if line is None or not line.startswith(READY_LINE):  # its pipe closed: it exits
            await process.wait_exit_async(process.stop_timeout)
            await self._stop_process()
            raise LaunchError(exit_reason(process))
        self._up_since = time.monotonic()
        self._subscribe()
        if self._sources is not None:
            self._state_seen.clear()
            if not self.device_state:  # the monitor's first update: no poll
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._state_seen.wait(), max(0.0, deadline - time.monotonic())
                    )
        if self._sources is not None and not self.device_state:
            self._set(Phase.RUNNING, "State PV does not answer the factory (EPICS_PVA_ADDR_LIST?)")
        else:
            self._set(Phase.RUNNING, note)

    async def _run(self, failure: str | None) -> None:
        """Watch the process; restart it after a crash, or give up after too many."""
        while True:
            if failure is None:
                failure = await self._wait_for_exit()
            self._in_a_row += 1
            if self._in_a_row > self.policy.max_restarts:
                restarts = self._in_a_row - 1
                self._set(Phase.FAILED, f"gave up after {restarts} restarts in a row: {failure}")
                return
            delay = self.policy.delay_before(self._in_a_row)
            self._set(Phase.RESTARTING, f"{failure}; restart in {delay:g} s")
            await asyncio.sleep(delay)
            self.restarts += 1
            try:
                await self._launch(f"restarted after: {failure}")
                failure = None
            except LaunchError as error:
                failure = str(error)

    async def _wait_for_exit(self) -> str:
        process = self.process
        assert process is not None
        while not await process.wait_exit_async(WATCH_PERIOD):  # an exit wakes it at once
            silent = self._silence()
            if silent is not None:
                reason = f"hung: Heartbeat silent for {silent:.0f} s; killed"
                self._set(Phase.HUNG, reason)
                process.popen.kill()
                process.stop()
                self._close_subscription()
                return reason
        reason = exit_reason(process)
        process.stop()  # collects the exit status and closes the log
        self._close_subscription()
        if time.monotonic() - self._up_since >= self.policy.stable_after:
            self._in_a_row = 0
        return reason

    def _silence(self) -> float | None:
        """Seconds of Heartbeat silence if that makes the running device hung, else None."""
        if self._last_beat is None:  # never seen: the factory cannot watch it (reported)
            return None
        silent = time.monotonic() - self._last_beat
        return silent if silent > self.hung_after else None
