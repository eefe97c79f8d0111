"""Shared fixtures: loopback network, unique prefixes, real IOC, served devices, leak checks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from threading import Thread
from typing import Any, TypeVar, cast

import numpy as np
import psutil
import pytest
from p4p.client.thread import Context
from p4p.nt import NTURI

from epics_collector.collector import Collector
from epics_collector.core import Device
from epics_collector.process import DeviceProcess, FactoryProcess, wait_for
from epics_collector.processing import Processing
from epics_collector.pva import DeviceServer, Network
from epics_collector.sim import SimIoc
from epics_collector.sources import EpicsSources

T = TypeVar("T")
EPICS_EPOCH = 631152000.0  # 1990-01-01, POSIX s: EPICS time 0 (a record never processed)


@pytest.fixture(scope="session", autouse=True)
def network() -> Iterator[Network]:
    """One loopback network per test run; the process environment is pinned to it."""
    net = Network.loopback()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(net.environ(saved))
    yield net
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def prefix() -> str:
    """A PV prefix no other test uses."""
    return f"T{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def ctx(network: Network) -> Iterator[Context]:
    """A p4p client searching only the run's loopback port."""
    with Context("pva", conf=network.client_conf(), useenv=False) as context:
        yield context


@pytest.fixture
def raw(network: Network) -> Iterator[Context]:
    """A p4p client that returns raw Values (tables as columns, no NT unwrapping)."""
    context = Context("pva", conf=network.client_conf(), useenv=False, nt=False)
    yield context
    context.close()


def call_table(raw: Context, pv: str, **arguments: Any) -> dict[str, np.ndarray]:
    """An RPC of string arguments (as ``pvcall``) answered by an NTTable: its columns."""
    text = {k: str(v) for k, v in arguments.items()}
    uri = NTURI([(k, "s") for k in text]).wrap(pv, kws=text)
    table: Any = raw.rpc(pv, uri, timeout=10)
    return {k: np.asarray(table["value"][k]) for k in table["value"].keys()}


@pytest.fixture(scope="session")
def sim_ioc(network: Network) -> Iterator[SimIoc]:
    """The real sim IOC (EPICS 7, QSRV), shared by the session under prefix ``TSIM:``.

    Given once every periodic record has processed: until then a record sends its UDF
    value at EPICS time 0, which a collector rightly counts in Dropped as bad_time, so a
    test that subscribed first would see a loss that is the IOC's start, not the code's.
    """
    with SimIoc(f"TSIM{uuid.uuid4().hex[:6]}:", network.environ()) as ioc:
        periodic = [ioc.prefix + name for name in ("Counter", "Temperature", "Slow", "BeamCycle")]
        with Context("pva", conf=network.client_conf(), useenv=False) as context:

            def processed() -> bool:
                stamps = [
                    getattr(context.get(pv, timeout=2.0), "timestamp", 0.0) for pv in periodic
                ]
                return all(stamp > EPICS_EPOCH for stamp in stamps)

            wait_for(processed, 10, "every periodic record of the sim IOC processed once")
        yield ioc


class ServedDevice:
    """A device served in this process on a background event loop."""

    def __init__(self, device: Device[Any], prefix: str, network: Network) -> None:
        self.device, self.prefix = device, prefix
        self.loop = asyncio.new_event_loop()
        self._thread = Thread(target=self.loop.run_forever, name=f"device {prefix}", daemon=True)
        self._thread.start()
        self.server = DeviceServer(device, prefix, network)
        self.call(self.server.__aenter__())

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coroutine`` on the device's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the device's loop (which owns its PVs); its result."""

        async def on_loop() -> T:
            return function(*args)

        return self.call(on_loop())

    def close(self) -> list[str]:
        """Stop serving; return the names of asyncio tasks the device leaked (idempotent)."""
        if self.loop.is_closed():
            return []
        self.call(self.server.__aexit__(None, None, None))

        async def others() -> list[str]:
            await asyncio.sleep(0)
            current = asyncio.current_task()
            return [t.get_name() for t in asyncio.all_tasks() if t is not current]

        leaked = self.call(others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
        return leaked


@pytest.fixture
def serve(network: Network) -> Iterator[Callable[[Device[Any], str], ServedDevice]]:
    """Serve devices in-process; stops them after the test and fails on leaked tasks."""
    served: list[ServedDevice] = []

    def start(device: Device[Any], prefix: str) -> ServedDevice:
        served.append(ServedDevice(device, prefix, network))
        return served[-1]

    yield start
    leaked = [name for s in served for name in s.close()]
    assert not leaked, f"device left asyncio tasks running: {leaked}"


def _sourced_devices(
    cls: type[Device[Any]], network: Network, prefix: str, data_dir: Path
) -> Iterator[Callable[..., ServedDevice]]:
    """Serve devices of ``cls`` in-process with real PVA and CA sources; stop them after."""
    sources = EpicsSources(network)
    served: list[ServedDevice] = []

    def start(config: dict[str, Any], device_prefix: str = prefix) -> ServedDevice:
        device = cls(config, data_dir=data_dir, sources=sources)
        served.append(ServedDevice(device, device_prefix, network))
        return served[-1]

    yield start
    leaked = [name for s in served for name in s.close()]
    sources.close()
    assert not leaked, f"{cls.__name__} left asyncio tasks running: {leaked}"


@pytest.fixture
def collector(
    network: Network, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., ServedDevice]]:
    """Serve collectors in-process on the run's network."""
    yield from _sourced_devices(Collector, network, prefix, tmp_path / "data")


@pytest.fixture
def processing(
    network: Network, prefix: str, tmp_path: Path
) -> Iterator[Callable[..., ServedDevice]]:
    """Serve processing devices in-process on the run's network."""
    yield from _sourced_devices(Processing, network, prefix, tmp_path / "data")


class SourceMonitor:
    """An independent lossless monitor of a PV: what the source really published."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.updates: list[tuple[Any, float, int]] = []  # value, timestamp, severity
        self._sub = ctx.monitor(name, self._on, request="record[queueSize=100000]field()")

    def _on(self, value: Any) -> None:
        scalar = getattr(value, "ndim", 0) == 0
        self.updates.append((float(value) if scalar else value, value.timestamp, value.severity))

    def close(self) -> None:
        self._sub.close()


@pytest.fixture
def source_monitor(ctx: Context) -> Iterator[Callable[[str], SourceMonitor]]:
    """Open independent monitors; closed after the test."""
    monitors: list[SourceMonitor] = []

    def start(name: str) -> SourceMonitor:
        monitors.append(SourceMonitor(ctx, name))
        return monitors[-1]

    yield start
    for monitor in monitors:
        monitor.close()


@pytest.fixture
def device_process(network: Network, tmp_path: Path) -> Iterator[Callable[..., DeviceProcess]]:
    """Start ``epics-collector run`` children; all are stopped after the test."""
    started: list[DeviceProcess] = []

    def start(type_name: str, prefix: str, config: dict[str, Any] | None = None) -> DeviceProcess:
        process = DeviceProcess(
            type_name, prefix, config, env=network.environ(), data_dir=tmp_path / "data"
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``epics-collector ARGS`` (no standard input, like CI); capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "epics_collector", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class FactoryHandle:
    """A factory child process (``epics-collector factory``) and a plain p4p client for it."""

    def __init__(self, network: Network, prefix: str, root: Path) -> None:
        self.prefix, self.env = prefix, network.environ()
        self.ctx = Context("pva", conf=network.client_conf(), useenv=False)
        self._raw = Context("pva", conf=network.client_conf(), useenv=False, nt=False)
        self.data_dir, self.state_dir = root / "data", root / "state"
        self.config_file: Path | None = None
        self.process: FactoryProcess | None = None
        self.launcher: Sequence[str] = ()  # put in front of the factory's command

    def start(self, config: str | None = None) -> FactoryHandle:
        """Start (or restart) the factory with the same directories."""
        if config is not None:
            self.config_file = self.data_dir.parent / "factory.yaml"
            self.config_file.parent.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(config)
        self.process = FactoryProcess(
            self.prefix,
            data_dir=self.data_dir,
            state_dir=self.state_dir,
            config=self.config_file,
            env=self.env,
            launcher=self.launcher,
        ).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        # forget channels to the stopped server: after a restart a cached channel would
        # find the new one only at its next backed-off search (see docs/reference/network)
        self.ctx.disconnect()
        self._raw.disconnect()

    def close(self) -> None:
        self.stop()
        self.ctx.close()
        self._raw.close()

    def call(self, rpc: str, /, **arguments: str) -> Any:
        """``pvcall``-style RPC: string arguments as an NTURI query."""
        uri = NTURI([(key, "s") for key in arguments])
        request = uri.wrap(self.prefix + rpc, kws=arguments)
        result = self.ctx.rpc(self.prefix + rpc, request, timeout=30.0)
        return result + "" if isinstance(result, str) else result  # p4p's ntstr str() has a stamp

    def raw_get(self, pv: str, timeout: float = 10.0) -> Any:
        """A PV's raw Value (an NTTable's ``value`` columns, say)."""
        return self._raw.get(pv, timeout=timeout)

    def raw_rpc(self, pv: str, request: Any, timeout: float = 30.0) -> Any:
        """An RPC whose result comes back as the raw Value (an NTTable's columns, say)."""
        return self._raw.rpc(pv, request, timeout=timeout)

    def create(self, type_name: str, name: str, config: dict[str, Any] | None = None) -> str:
        return self.call("Create", type=type_name, name=name, config=json.dumps(config or {}))

    def table(self) -> dict[str, list[Any]]:
        """The Devices table as columns of Python values."""
        value = cast(Any, self._raw.get(self.prefix + "Devices"))["value"]
        return {key: list(value[key]) for key in value.keys()}

    def row(self, name: str) -> dict[str, Any]:
        table = self.table()
        index = table["name"].index(name)
        return {key: column[index] for key, column in table.items()}


@pytest.fixture
def factory_process(network: Network, tmp_path: Path) -> Iterator[Callable[..., FactoryHandle]]:
    """Start factories as child processes; each is stopped after the test."""
    handles: list[FactoryHandle] = []

    def start(
        config: str | None = None, prefix: str | None = None, launcher: Sequence[str] = ()
    ) -> FactoryHandle:
        root = tmp_path / f"factory{len(handles)}"
        fac_prefix = prefix or f"F{uuid.uuid4().hex[:8]}:"
        handles.append(FactoryHandle(network, fac_prefix, root))
        handles[-1].launcher = launcher
        return handles[-1].start(config)

    yield start
    for handle in handles:
        handle.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 8 MB mounted for the test (skipped where mounting is not permitted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone, or a zombie, while we looked
        return False


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """Fail a test that leaves child processes behind (session fixtures excepted)."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    leaked = [p for p in me.children(recursive=True) if p.pid not in before and _alive(p)]
    for p in leaked:
        p.kill()
    assert not leaked, f"test leaked child processes: {[p.cmdline() for p in leaked]}"


def wait_published(ctx: Context, prefix: str, *aliases: str, timeout: float = 5.0) -> None:
    """Wait until the history PVs of ``aliases`` hold every sample ``Count`` counts.

    After Stop the history is final; its PVs are posted at ``publish_rate``. Raises
    TimeoutError (with both numbers) if they never agree.
    """

    def held() -> int:
        return sum(len(cast(Any, ctx.get(f"{prefix}{alias}:Time"))) for alias in aliases)

    wait_for(
        lambda: held() == int(cast(Any, ctx.get(prefix + "Count"))),
        timeout,
        f"{prefix}{'/'.join(aliases)} history holding Count samples",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A system test module stays on one worker; other tests spread one by one.

    ``make test`` runs ``--dist loadgroup``: the tests of one system module run in turn
    (many measure bursts or load, and two of them at once on two cores would measure
    each other), while unit tests and the docs' pages are shared out singly, so no
    worker idles behind a long module at the end.

    Tests marked ``load`` (a 100,000-channel collector, thousands of churning monitors, a
    flat-out burst under a read flood, a 5 kHz processor under puts) share one group:
    they run one after another, so no two of them load the two cores at once and measure
    each other (CI saw one's recording overrun while the other connected 100,000
    channels, and that one miss its connect timeout).
    """
    for item in items:
        path = Path(str(item.fspath))
        if item.get_closest_marker("load") is not None:
            item.add_marker(pytest.mark.xdist_group(name="load"))
        elif path.parent.name == "system":
            item.add_marker(pytest.mark.xdist_group(name=path.stem))
    # The longest work first, the single short tests last (xdist hands groups out in this
    # order): the load group (over two minutes) starts at once, and the docs' pages and
    # unit tests fill whichever worker frees first at the end, instead of one worker
    # idling while the other ends a long group.
    items.sort(key=_dealt)


def _dealt(item: pytest.Item) -> int:
    """When a test is handed out: 0 the load group, 1 system modules, 2 docs, 3 the rest."""
    if item.get_closest_marker("load") is not None:
        return 0
    path = Path(str(item.fspath))
    if path.parent.name == "system":
        return 1
    return 2 if path.name == "test_docs.py" else 3
