"""The supervisor with in-memory sources: Hung from a silent Heartbeat, restarts, pid files."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.doubles import InMemorySources

from epics_collector.factory._config import DeviceSpec, RestartPolicy
from epics_collector.factory._state_files import PidFile
from epics_collector.factory._supervisor import Phase, Supervisor
from epics_collector.process import ManagedProcess, wait_for_async

PREFIX = "UNIT:fake:"


def make(sources: InMemorySources, phases: list[str], pid_file: PidFile | None = None):
    supervisor: Supervisor

    def launch(spec: DeviceSpec) -> ManagedProcess:
        return ManagedProcess("tests.unit.factory.fake_device", stop_timeout=2).start()

    def changed() -> None:
        if not phases or phases[-1] != supervisor.phase:
            phases.append(str(supervisor.phase))

    supervisor = Supervisor(
        DeviceSpec(name="fake", type="counter", prefix=PREFIX),
        launch=launch,
        policy=RestartPolicy(delay=0.05),
        ready_timeout=20,
        sources=sources,
        state_names=["Idle"],
        on_change=changed,
        hung_after=0.5,
        pid_file=pid_file,
    )
    return supervisor


class Device:
    """Plays the device's PVs: State always, Heartbeat while ``beating``."""

    def __init__(self, sources: InMemorySources) -> None:
        self.sources, self.beating, self.beats = sources, True, 0

    async def run(self) -> None:
        while True:
            self.sources.post(PREFIX + "State", 0, 1.7e9)
            if self.beating:
                self.beats += 1
                self.sources.post(PREFIX + "Heartbeat", self.beats, 1.7e9)
            await asyncio.sleep(0.05)


async def supervise(supervisor: Supervisor, device: Device, body) -> None:
    player = asyncio.create_task(device.run())
    try:
        await supervisor.start()
        await body()
    finally:
        await supervisor.stop()
        player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await player


def test_a_silent_heartbeat_makes_the_device_hung_then_restarted(tmp_path: Path) -> None:
    sources, phases = InMemorySources(), []
    pid_file = PidFile(tmp_path, "fake")
    supervisor, device = make(sources, phases, pid_file), Device(sources)

    async def body() -> None:
        first = supervisor.process
        assert first is not None and supervisor.state == "Idle"
        assert f'"pid": {first.pid}' in pid_file.path.read_text()
        await asyncio.sleep(1.0)  # beating: healthy for twice hung_after
        assert supervisor.restarts == 0 and supervisor.phase == Phase.RUNNING
        device.beating = False
        await wait_for_async(lambda: supervisor.restarts == 1, 10, "restart")
        device.beating = True
        await wait_for_async(lambda: supervisor.phase == Phase.RUNNING, 10, "running again")
        assert not first.running, "the hung process still runs"
        second = supervisor.process
        assert second is not None and second is not first
        assert f'"pid": {second.pid}' in pid_file.path.read_text()
        assert "Heartbeat silent" in supervisor.reason

    asyncio.run(supervise(supervisor, device, body))
    assert phases[:4] == ["Starting", "Running", "Hung", "Restarting"], phases
    assert not pid_file.path.exists(), "a stopped device keeps no pid file"


def test_a_device_never_heard_is_not_taken_for_hung() -> None:
    sources, phases = InMemorySources(), []
    supervisor, device = make(sources, phases), Device(sources)
    device.beating = False  # its Heartbeat never reaches the factory (network)

    async def body() -> None:
        await asyncio.sleep(1.5)  # a negative check: three times hung_after, no beat
        assert supervisor.restarts == 0 and supervisor.phase == Phase.RUNNING

    asyncio.run(supervise(supervisor, device, body))


def test_a_pid_file_stops_only_the_device_command_it_names(tmp_path: Path) -> None:
    """Finding 12: only a trusted file naming exactly this factory's command kills."""
    import os
    import sys

    args = ["run", "counter", "--prefix", PREFIX, "--parent-pid", "1"]
    expected = [sys.executable, "-m", "tests.unit.factory.fake_device", *args[:4]]
    with ManagedProcess("tests.unit.factory.fake_device", args) as mine:
        pid_file = PidFile(tmp_path, "fake")
        # another process's command (an operator's own device, an unrelated tool)
        pid_file.write(mine.pid, [sys.executable, "/usr/bin/epics-collector", *args])
        assert pid_file.stop_leftover(expected) is None and mine.running
        # the right command, but a file others may write: not trusted
        pid_file.write(mine.pid, mine.command)
        os.chmod(pid_file.path, 0o644)
        assert pid_file.stop_leftover(expected) is None and mine.running
        # the right command for another device name's prefix
        pid_file.write(mine.pid, mine.command)
        other = [*expected[:-1], "OTHER:"]
        assert pid_file.stop_leftover(other) is None and mine.running
        # a link in place of the file
        target = tmp_path / "elsewhere.json"
        PidFile(tmp_path, "x").write(mine.pid, mine.command)
        (tmp_path / "pids" / "x.json").rename(target)
        pid_file.path.unlink(missing_ok=True)
        pid_file.path.symlink_to(target)
        assert pid_file.stop_leftover(expected) is None and mine.running
        # exactly what this factory launched, in its own 0600 file
        pid_file.write(mine.pid, mine.command)
        assert oct(pid_file.path.stat().st_mode & 0o777) == "0o600"
        assert pid_file.stop_leftover(expected) == mine.pid
        assert not mine.running and not pid_file.path.exists()
