"""``epics-collector demo``: the sim IOC and a device on loopback, live in the terminal."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from epics_collector.process import DeviceProcess
from epics_collector.pva import Client, Network
from epics_collector.sim import SimIoc

SIM, DEVICE = "DEMO:SIM:", "DEMO:CNT:"
WATCHED = [
    f"{SIM}Counter",
    f"{SIM}Temperature",
    f"{SIM}Pressure",
    f"{SIM}BeamOn",
    f"{SIM}Compressed",
    f"{DEVICE}State",
    f"{DEVICE}Count",
    f"{DEVICE}Heartbeat",
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
        elif isinstance(value, int | float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        severity = getattr(value, "severity", 0)
        table.add_row(name, text, SEVERITY.get(severity, str(severity)))
    return table


def run_demo(duration: float) -> None:
    """Run the demo for ``duration`` seconds (0: until Ctrl-C); everything stops in the end."""
    console = Console()
    network = Network.loopback()
    env = network.environ()
    console.print(f"Loopback network: PVA search port {network.search_port} on 127.0.0.1")
    with (
        SimIoc(SIM, env) as ioc,
        DeviceProcess("counter", DEVICE, {"step": 1}, env=env) as device,
        Client(network) as client,
    ):
        console.print(
            f"sim IOC (pid {ioc.process.pid}) and counter device (pid {device.process.pid}) up"
        )
        client.put(f"{DEVICE}Start", 1)
        console.print(
            "Read them from another shell with p4p:\n"
            f"  EPICS_PVA_ADDR_LIST=127.0.0.1:{network.search_port} "
            "EPICS_PVA_AUTO_ADDR_LIST=NO \\\n"
            f"  .venv/bin/python -m p4p.client.cli get {DEVICE}Count {SIM}Temperature"
        )
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        until = f"for {duration:g} s" if duration > 0 else "until Ctrl-C"
        console.print(f"Showing live values {until}")
        try:
            with Live(_table({}), console=console, refresh_per_second=4) as live:
                while time.monotonic() < deadline:
                    values = dict(zip(WATCHED, client.get_many(WATCHED), strict=True))
                    live.update(_table(values))
                    time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("Interrupted")
        count = client.get(f"{DEVICE}Count")
    console.print(f"Stopped cleanly; the counter reached {int(count)}.")
