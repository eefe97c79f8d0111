"""Through p4p's PVA gateway vs direct, on loopback (two search ports, the gateway between).

1. History get of ``--samples`` rows (a collector's ``Table``): direct and through the
   gateway, and the same for a raw p4p NTTable of the same columns and rows, interleaved
   rounds of ``--repeats`` gets. pvagw copies every answer (upstream Value into its
   own, then out), so the raw table through it is as slow relative to direct as ours;
   the target is ours through the gateway / raw p4p through the gateway (>= 0.8).
2. A ``--rate`` Hz scalar monitor (the project's p4p counter source, ``--count`` posts):
   updates received through the gateway and direct; missing counter values are lost.
3. Many viewers: ``--viewers`` clients (one p4p context each) monitor one collector's
   ``Table`` (``--viewer-rows`` rows, growing at 10 Hz): the collector's CPU with the
   clients direct vs through the gateway (which keeps one upstream subscription).
The gateway is the deploy kit's configuration with loopback addresses and an ACF that
lets everyone read.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from p4p.client.thread import Context

from _common import (
    QUICK,
    BenchParser,
    Figure,
    Network,
    Runs,
    ServerProcess,
    interleaved,
    prewritten_history,
    report,
    timed,
)
from epics_collector.process import DeviceProcess, wait_for
from epics_collector.pva import free_port
from epics_collector.sim import PvaSource


def gateway_config(directory: Path, inner: Network, outer: Network) -> Path:
    config = {
        "version": 2,
        "clients": [
            {
                "name": "beamline",
                "provider": "pva",
                "addrlist": f"127.0.0.1:{inner.search_port}",
                "autoaddrlist": False,
                "bcastport": inner.search_port,
            }
        ],
        "servers": [
            {
                "name": "office",
                "clients": ["beamline"],
                "interface": ["127.0.0.1"],
                "addrlist": "127.0.0.1",
                "autoaddrlist": False,
                "serverport": free_port(socket.SOCK_STREAM),
                "bcastport": outer.search_port,
                "access": "read.acf",
            }
        ],
    }
    # READ for everyone, and UNCACHED: a client may ask for its own upstream subscription
    (directory / "read.acf").write_text(
        "ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(1, UNCACHED)\n}\n"
    )
    path = directory / "gw.conf"
    path.write_text(json.dumps(config))
    return path


def monitor_counts(
    network: Network, name: str, go: Any, count: int, cached: bool = True
) -> tuple[int, int]:
    """(updates received, counter values missing) of ``count`` posts of ``name``.

    ``cached=False`` asks a gateway for a subscription of our own (``record._options.cache``
    false, the UNCACHED privilege), which carries our queue size upstream.
    """
    values: list[float] = []
    request = "record[queueSize=100000]" if cached else "record[queueSize=100000,cache=false]"
    with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
        sub = ctx.monitor(name, lambda v: values.append(float(v)), request=request)
        wait_for(lambda: bool(values), 10, "the first update")
        values.clear()
        go()
        try:
            wait_for(lambda: bool(values) and values[-1] >= count, 60, "the last post")
        except TimeoutError:
            pass  # counted as missing below
        time.sleep(0.5)  # a settling pause: late updates still in flight
        sub.close()
    got = set(values)
    return len(values), sum(1 for i in range(1, count + 1) if float(i) not in got)


def cpu_share(process: psutil.Process, seconds: float) -> float:
    before, started = process.cpu_times(), time.monotonic()
    time.sleep(seconds)  # the measuring window
    after = process.cpu_times()
    return (after.user + after.system - before.user - before.system) / (time.monotonic() - started)


def viewers(
    network: Network, name: str, clients: int, device: psutil.Process, seconds: float
) -> float:
    contexts = [Context("pva", conf=network.client_conf(), useenv=False) for _ in range(clients)]
    received = [0] * clients
    lock = threading.Lock()

    def counter(i: int) -> Any:
        def on_update(value: Any) -> None:
            with lock:
                received[i] += 1

        return on_update

    subs = [
        ctx.monitor(name, counter(i), request="record[queueSize=4]")
        for i, ctx in enumerate(contexts)
    ]
    try:
        wait_for(lambda: min(received) >= 2, 30, "every viewer updated")
        return cpu_share(device, seconds)
    finally:
        for sub in subs:
            sub.close()
        for ctx in contexts:
            ctx.close()


def table_server(network, ready, go, stop, result, columns: list[tuple[str, str]], rows: int):
    """Serve ``BGRAW:Table``: a raw p4p NTTable of ``columns`` (name, dtype), ``rows`` long."""
    from p4p import Value
    from p4p.nt import NTTable
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    nt = NTTable(columns=[(name, _code(dtype)) for name, dtype in columns])
    columns_ = {name: np.zeros(rows, dtype) for name, dtype in columns}
    value = Value(nt.type, {"labels": list(columns_), "value": columns_})
    provider = StaticProvider("bench")
    provider.add("BGRAW:Table", SharedPV(nt=nt, initial=value))
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        ready.set()
        stop.wait()


def _code(dtype: str) -> str:
    kind = np.dtype(dtype)
    codes = {"f8": "d", "f4": "f", "i8": "l", "i4": "i", "i2": "h", "i1": "b", "u1": "B"}
    return codes[f"{kind.kind}{kind.itemsize}"]


def table_gets(
    direct: Context, through: Context, name: str, repeats: int, runs: int
) -> dict[str, Runs]:
    """Median ms of ``repeats`` gets of ``name``, direct and through the gateway, per round."""
    uncached = "record[cache=false]"  # a get of our own, not the shared one
    through.get(name, request=uncached, timeout=60)  # the gateway finds it
    direct.get(name, timeout=60)
    figures = interleaved(
        runs,
        direct=lambda _: {"ms": timed(lambda: direct.get(name, timeout=60), repeats) * 1e3},
        shared=lambda _: {"ms": timed(lambda: through.get(name, timeout=60), repeats) * 1e3},
        uncached=lambda _: {
            "ms": timed(lambda: through.get(name, request=uncached, timeout=60), repeats) * 1e3
        },
    )
    return {side: figures[side]["ms"] for side in figures}


def main() -> None:
    parser = BenchParser(__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000, quick=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="gets per side per round")
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--count", type=int, default=50_000, quick=5000)
    parser.add_argument("--viewers", type=int, default=20, quick=3)
    parser.add_argument("--viewer-rows", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0, quick=0.5)
    args = parser.parse_args()
    inner, outer = Network.loopback(), Network.loopback()
    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory() as root:
        data = Path(root)
        prewritten_history(data / "hist", "H", args.samples)
        prewritten_history(data / "view", "V", args.viewer_rows)
        gw = subprocess.Popen(
            [sys.executable, "-m", "p4p.gw", str(gateway_config(data, inner, outer))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        config = {
            "channels": [{"pv": "NOPE:H", "alias": "H"}],
            "capacity": args.samples,
            "persist": True,
        }
        source = PvaSource("BGW", inner.environ(), channels=1, rate=10)
        view_config = {
            "channels": [{"pv": "BGW0000", "alias": "V"}],
            "capacity": 10 * args.viewer_rows,
            "persist": True,
            "autostart": True,
            "publish_rate": 2,
        }
        try:
            with (
                DeviceProcess(
                    "collector",
                    "BGH:",
                    config,
                    env=inner.environ(),
                    data_dir=data / "hist",
                    timeout=120,
                ),
                source,
                DeviceProcess(
                    "collector",
                    "BGV:",
                    view_config,
                    env=inner.environ(),
                    data_dir=data / "view",
                    timeout=120,
                ) as view,
                Context("pva", conf=inner.client_conf(), useenv=False) as direct,
                Context("pva", conf=outer.client_conf(), useenv=False) as through,
            ):
                ours = table_gets(direct, through, "BGH:H:Table", args.repeats, args.runs)
                table: Any = direct.get("BGH:H:Table", timeout=60)
                columns = [(c, table.value[c].dtype.str) for c in table.labels]
                with ServerProcess(table_server, inner, columns, args.samples):
                    raw = table_gets(direct, through, "BGRAW:Table", args.repeats, args.runs)
                rows = f"{args.samples:.0e} rows"
                figures[f"history get {rows} direct, median ms"] = ours["direct"]
                figures[f"history get {rows} via gateway (shared), median ms"] = ours["shared"]
                figures[f"history get {rows} via gateway (cache=false), median ms"] = ours[
                    "uncached"
                ]
                figures["history get: gateway rate / direct rate"] = ours["direct"] / ours["shared"]
                figures["history get: gateway (cache=false) rate / direct"] = (
                    ours["direct"] / ours["uncached"]
                )
                figures[f"raw p4p NTTable {rows} direct, median ms"] = raw["direct"]
                figures[f"raw p4p NTTable {rows} via gateway (shared), median ms"] = raw["shared"]
                figures["raw p4p NTTable: gateway rate / direct rate"] = (
                    raw["direct"] / raw["shared"]
                )
                figures["history get via gateway / raw p4p NTTable via gateway"] = (
                    raw["shared"] / ours["shared"]
                )

                def go() -> None:
                    direct.put("BGW:Rate", args.rate)
                    direct.put("BGW:Count", args.count)
                    direct.put("BGW:Go", 1)

                got, lost = monitor_counts(outer, "BGW0000", go, args.count)
                figures[f"{args.rate:g} Hz monitor via gateway (shared): updates received"] = got
                figures[f"{args.rate:g} Hz monitor via gateway (shared): lost"] = lost
                got, lost = monitor_counts(outer, "BGW0000", go, args.count, cached=False)
                figures[f"{args.rate:g} Hz monitor via gateway (cache=false): lost"] = lost
                got, lost = monitor_counts(inner, "BGW0000", go, args.count)
                figures[f"{args.rate:g} Hz monitor direct: lost"] = lost
                if not QUICK:  # (viewers: no target; make bench measures them)
                    direct.put("BGW:Rate", 10)
                    direct.put("BGW:Count", 0)
                    direct.put("BGW:Go", 1)  # the viewed collector keeps recording at 10 Hz
                    device = psutil.Process(view.process.pid)
                    idle = cpu_share(device, args.seconds)
                    figures["viewed collector CPU, no viewer"] = idle
                    figures[f"viewed collector CPU, {args.viewers} viewers direct"] = viewers(
                        inner, "BGV:V:Table", args.viewers, device, args.seconds
                    )
                    figures[f"viewed collector CPU, {args.viewers} viewers via gateway"] = viewers(
                        outer, "BGV:V:Table", args.viewers, device, args.seconds
                    )
                    figures["viewed collector CPU, 1 viewer direct"] = viewers(
                        inner, "BGV:V:Table", 1, device, args.seconds
                    )
        finally:
            gw.terminate()
            gw.wait(10)
    if not QUICK:
        gw_cpu = float(figures[f"viewed collector CPU, {args.viewers} viewers via gateway"])  # type: ignore[arg-type]
        one = float(figures["viewed collector CPU, 1 viewer direct"])  # type: ignore[arg-type]
        ratio = f"{args.viewers} viewers via gateway / 1 viewer direct (collector CPU)"
        figures[ratio] = gw_cpu / max(one, 1e-6)
    report(
        "through the PVA gateway vs direct",
        figures,
        {
            # pvagw's own copy bounds "gateway rate / direct rate" (raw p4p measured beside):
            # the target is what we add to it
            "history get via gateway / raw p4p NTTable via gateway": 0.8,
            f"<={args.rate:g} Hz monitor via gateway (cache=false): lost": 0,
        },
    )


if __name__ == "__main__":
    main()
