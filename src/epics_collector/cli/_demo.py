"""``epics-collector demo``: the sim IOC and a device on loopback, live in the terminal."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from p4p.nt.enum import ntenum
from rich.console import Console
from rich.live import Live
from rich.table import Table

from epics_collector.process import DeviceProcess
from epics_collector.pva import Client, Network
from epics_collector.sim import SimIoc

SIM, DEVICE, COLLECTOR = "DEMO:SIM:", "DEMO:CNT:", "DEMO:COL:"
COLLECTOR_CONFIG = {
    "channels": [
        {"pv": f"{SIM}Counter", "alias": "counter"},
        {"pv": f"ca://{SIM}Temperature", "alias": "temperature"},
        {"pv": f"{SIM}Compressed", "alias": "compressed"},
    ],
    "autostart": True,
}
WATCHED = [
    f"{SIM}Counter",
    f"{SIM}Temperature",
    f"{SIM}Pressure",
    f"{SIM}BeamOn",
    f"{SIM}Compressed",
    f"{DEVICE}State",
    f"{DEVICE}Count",
    f"{DEVICE}Heartbeat",
    f"{COLLECTOR}State",
    f"{COLLECTOR}Count",
    f"{COLLECTOR}Dropped",
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


def run_demo(duration: float) -> None:
    """Run the demo for ``duration`` seconds (0: until Ctrl-C); everything stops in the end."""
    console = Console()
    network = Network.loopback()
    env = network.environ()
    console.print(f"Loopback network: PVA search port {network.search_port} on 127.0.0.1")
    with (
        tempfile.TemporaryDirectory(prefix="epics-collector-demo-") as data,
        SimIoc(SIM, env) as ioc,
        DeviceProcess("counter", DEVICE, {"step": 1}, env=env) as device,
        DeviceProcess(
            "collector", COLLECTOR, COLLECTOR_CONFIG, env=env, data_dir=Path(data)
        ) as col,
        Client(network) as client,
    ):
        console.print(
            f"sim IOC (pid {ioc.process.pid}), counter (pid {device.process.pid}) and "
            f"collector (pid {col.process.pid}) up"
        )
        client.put(f"{DEVICE}Start", 1)
        console.print(
            "Read them from another shell with p4p:\n"
            f"  EPICS_PVA_ADDR_LIST=127.0.0.1:{network.search_port} "
            "EPICS_PVA_AUTO_ADDR_LIST=NO \\\n"
            f"  .venv/bin/python -m p4p.client.cli get {DEVICE}Count {COLLECTOR}temperature:Value"
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
        client.put(f"{COLLECTOR}Stop", 1)
        history = client.get(f"{COLLECTOR}temperature:Value")
        recorded = client.get(f"{COLLECTOR}Count")
    console.print()
    console.print(
        f"The collector recorded {int(recorded)} samples; {COLLECTOR}temperature:Value held "
        f"{len(history)} (last {history[-1] if len(history) else float('nan'):.3f} degC)."
    )
    console.print(f"Stopped cleanly; the counter reached {int(count)}.")
