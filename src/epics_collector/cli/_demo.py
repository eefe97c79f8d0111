"""``epics-collector demo``: the main job on embedded defaults, on a private loopback network.

A real EPICS 7 IOC (the sim IOC) is the source; a local factory creates a collector (a
compressed channel, a waveform, a trigger window on the beam) and two processing
devices (``calc`` and ``stats``); values show live; the history is exported as NeXus;
everything stops cleanly. Results stay in a fresh run directory under ``--output``.
"""

from __future__ import annotations

import datetime
import importlib.util
import socket
import time
from pathlib import Path
from typing import Any

from p4p.nt.enum import ntenum
from rich.console import Console
from rich.live import Live
from rich.table import Table

from epics_collector.client import Collector, Factory
from epics_collector.process import ManagedProcess, StopRequest
from epics_collector.pva import Client, Network, listening_port
from epics_collector.sim import SimIoc

SIM, FACTORY = "DEMO:SIM:", "DEMO:FAC:"
COL, CALC, STATS = f"{FACTORY}demo:", f"{FACTORY}calc:", f"{FACTORY}stats:"
COLLECTOR_CONFIG: dict[str, Any] = {
    "channels": [
        {"pv": f"{SIM}Counter", "alias": "counter"},
        {"pv": f"ca://{SIM}Temperature", "alias": "temperature"},
        {"pv": f"{SIM}Pressure", "alias": "pressure", "compress": {"algorithm": "mean", "n": 5}},
        {"pv": f"{SIM}Waveform", "alias": "waveform", "kind": "waveform"},
    ],
    "trigger": {"pv": f"{SIM}BeamOn", "when": "rising", "pre": 1.0, "post": 1.0},
    "capacity": 10_000,
    "autostart": True,
}
WATCHED = [
    f"{SIM}Counter",
    f"{SIM}Temperature",
    f"{SIM}Pressure",
    f"{SIM}BeamOn",
    f"{COL}State",
    f"{COL}Count",
    f"{COL}Dropped",
    f"{COL}Overruns",
    f"{CALC}result",
    f"{STATS}mean",
    f"{STATS}std",
]
SEVERITY = {0: "", 1: "[yellow]MINOR[/]", 2: "[red]MAJOR[/]", 3: "[magenta]INVALID[/]"}


def _table(values: dict[str, Any]) -> Table:
    table = Table(title="Live values (Ctrl-C stops)")
    for column in ("PV", "value", "alarm"):
        table.add_column(column)
    for name in WATCHED:
        value = values.get(name)
        if value is None or isinstance(value, Exception):
            text = "(no value)"
        elif isinstance(value, int | float) and not isinstance(value, ntenum):
            text = f"{value:.6g}"
        else:
            text = str(value)
        severity = getattr(value, "severity", 0)
        table.add_row(name, text, SEVERITY.get(severity, str(severity)))
    return table


def _show_live(console: Console, network: Network, duration: float, stop: StopRequest) -> None:
    """Show the watched PVs until ``duration`` passes or Ctrl-C (SIGINT) comes."""
    deadline = time.monotonic() + duration if duration > 0 else float("inf")
    until = f"for {duration:g} s" if duration > 0 else "until Ctrl-C"
    console.print(f"Showing live values {until}")
    with Client(network) as client:
        with Live(_table({}), console=console, refresh_per_second=4) as live:
            while time.monotonic() < deadline and not stop.requested:
                values = dict(zip(WATCHED, client.get_many(WATCHED), strict=True))
                live.update(_table(values))
                stop.wait(min(0.5, max(0.0, deadline - time.monotonic())))
    if not console.is_terminal:
        console.line()  # Live leaves the last table without a newline in a pipe


class _StopRequestedError(Exception):
    """Ctrl-C came while the demo was starting: go straight to the clean-up."""


def _check(stop: StopRequest) -> None:
    if stop.requested:
        raise _StopRequestedError


def _dashboard(network: Network) -> tuple[ManagedProcess, str] | None:
    """``epics-collector web`` for the demo's factory, if the web extra is installed."""
    if importlib.util.find_spec("fastapi") is None:
        return None
    port = listening_port(socket.SOCK_STREAM)
    args = ["web", "--factory", FACTORY, "--port", str(port)]
    process = ManagedProcess("epics_collector", args, env=network.environ()).start()
    process.wait_notified(30)  # "dashboard of ... on http://..."
    return process, f"http://127.0.0.1:{port}/"


def run_demo(duration: float, output: Path) -> None:
    """Run the demo for ``duration`` seconds (0: until Ctrl-C); everything stops in the end.

    Ctrl-C (or SIGTERM) at any time ends the demo the normal way: the devices, the IOC and
    the dashboard stop in order, what was recorded is exported, and the exit code is 0.
    """
    run_dir = _run_directory(output)
    console = Console(emoji=False, highlight=False)
    stop = StopRequest().install()  # the children have their own process groups
    network = Network.loopback()
    console.print(f"Loopback network: PVA search port {network.search_port} on 127.0.0.1")
    with (
        SimIoc(SIM, network.environ()) as ioc,
        Factory.local(FACTORY, data_dir=run_dir, network=network) as factory,
    ):
        console.print(f"sim IOC (pid {ioc.process.pid}) and factory {FACTORY} up")
        collector: Collector | None = None
        dashboard: tuple[ManagedProcess, str] | None = None
        try:
            _check(stop)
            collector = factory.create_collector("demo", **COLLECTOR_CONFIG)
            _check(stop)
            _create_processors(factory)
            _check(stop)
            dashboard = _dashboard(network)
            _introduce(console, factory, network, dashboard)
            _check(stop)
            _show_live(console, network, duration, stop)
        except _StopRequestedError:
            pass
        finally:
            if dashboard is not None:
                dashboard[0].stop()
        if stop.requested:
            console.print("Interrupted: stopping")
        if collector is not None:
            _finish(console, collector)
    console.print("Stopped cleanly.")


def _create_processors(factory: Factory) -> None:
    factory.create_processor(
        "calc",
        inputs={"n": f"{SIM}Counter", "t": f"ca://{SIM}Temperature"},
        processor="calc",
        params={"expression": "n * 2 + t"},
    )
    factory.create_processor(
        "stats", inputs={"p": f"{SIM}Pressure"}, processor="stats", params={"window": 50}
    )


def _introduce(
    console: Console,
    factory: Factory,
    network: Network,
    dashboard: tuple[ManagedProcess, str] | None,
) -> None:
    for device in factory.devices():
        console.print(f"  {device.name:<6} {device.type:<11} {device.prefix:<16} pid {device.pid}")
    console.print(
        "Read them from another shell while the demo runs (--duration 0 keeps it up):\n"
        f"  export EPICS_PVA_ADDR_LIST=127.0.0.1:{network.search_port} "
        "EPICS_PVA_AUTO_ADDR_LIST=NO\n"
        f"  .venv/bin/epics-collector get {COL}Count\n"
        f"  .venv/bin/epics-collector history {COL} temperature --last 5\n"
        '  .venv/bin/python -c "from epics_collector.client import Collector; '
        f"print(Collector.connect('{COL}').history('pressure').value[-5:])\"",
        soft_wrap=True,
    )
    if dashboard is not None:
        console.print(f"Live dashboard (read-only) while the demo runs: {dashboard[1]}")


def _count(number: int, thing: str) -> str:
    """``1 counter sample``, ``2 counter samples``."""
    return f"{number} {thing}{'' if number == 1 else 's'}"


class DemoSetupError(RuntimeError):
    """The demo cannot start as asked (its output directory, say)."""


def _run_directory(output: Path) -> Path:
    """A new run directory under ``output``, made now: a bad --output fails before anything."""
    run_dir = output / datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S-%f")
    try:
        run_dir.mkdir(parents=True)
    except OSError as error:
        raise DemoSetupError(
            f"--output {output}: cannot make a run directory there ({error.strerror})"
        ) from None
    return run_dir


def _finish(console: Console, col: Collector) -> None:
    """Stop recording and export what was recorded."""
    col.stop()
    counts = {alias: len(col.history(alias).time) for alias in ("counter", "pressure")}
    snapshots = len(col.snapshots()["id"])
    path = col.export("demo.nxs")
    console.print()
    console.print(
        f"The collector held {_count(counts['counter'], 'counter sample')} and "
        f"{_count(counts['pressure'], 'pressure mean')} (5 samples each), and took "
        f"{_count(snapshots, 'beam snapshot')}."
    )
    console.print(f"NeXus file: {path}", soft_wrap=True)
    console.print(
        "Read it with h5py: "
        f"h5py.File('{path}')['entry/channels/counter/value'][:]  (one NXlog per channel)",
        soft_wrap=True,
    )
