"""History views: a Query of 1e7 samples, its memory, and the web dashboard's cost.

1. A persisting collector starts on a pre-written history of ``--samples`` rows; the
   ``Query`` RPC asks for ``--points`` minmax bins of all of it. The limit measured in
   the same run: numpy doing the same reduction in this process on the same rows
   (``searchsorted`` for the bin edges, ``fmin/fmax/add.reduceat``), no network at all.
2. Memory: peak bytes a query allocates beyond the ring (tracemalloc sees numpy's
   allocations), for 1e3 and 1e5 points over the same rows: O(points), not O(rows).
3. The web dashboard on ``--channels`` channels x ``--recorded`` samples each, recording
   at 10 Hz: server CPU and bytes per second from the devices (``read_chars`` of the
   process: what it receives) and to the page, against the earlier design measured in
   the same run (a client monitoring every channel's whole ``Table`` PV, which is what
   the dashboard server did before).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import (
    QUICK,
    BenchParser,
    Figure,
    Network,
    Runs,
    interleaved,
    prewritten_history,
    report,
    timed,
)
from epics_collector.process import DeviceProcess, ManagedProcess
from epics_collector.sim import PvaSource
from epics_collector.storage import Columns, Query, Ring, run_query


def numpy_minmax(t: np.ndarray, v: np.ndarray, points: int) -> None:
    """The reduction done the plain numpy way, in process (the limit)."""
    edges = np.searchsorted(t, np.linspace(t[0], t[-1], points + 1)[:-1])
    np.fmin.reduceat(v, edges)
    np.fmax.reduceat(v, edges)
    np.add.reduceat(v, edges)
    np.diff(edges)


def query_round_trip(samples: int, points: int, repeats: int, rounds: int) -> dict[str, Figure]:
    network = Network.loopback()
    with tempfile.TemporaryDirectory() as root:
        data = Path(root)
        prewritten_history(data, "H", samples)
        config = {
            "channels": [{"pv": "NOPE:H", "alias": "H"}],
            "capacity": samples,
            "persist": True,
        }
        with (
            DeviceProcess(
                "collector", "BHV:", config, env=network.environ(), data_dir=data, timeout=120
            ),
            Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx,
        ):
            arguments = {"alias": "H", "points": str(points), "operator": "minmax"}
            uri = NTURI([(k, "s") for k in arguments]).wrap("BHV:Query", kws=arguments)

            def call() -> Any:
                return ctx.rpc("BHV:Query", uri, timeout=30)

            began = time.perf_counter()
            answer = call()  # the first builds the block summaries (a pass over the rows)
            first = (time.perf_counter() - began) * 1e3
            assert len(answer["value"]["time"]) == points, "not every bin filled"
            t = 1.7e9 + np.arange(samples, dtype=float)  # the rows prewritten_history wrote
            v = t * 2
            runs = interleaved(  # each side: the median of ``repeats`` calls, per round
                rounds,
                ours=lambda _: {"ms": timed(call, repeats) * 1e3},
                numpy=lambda _: {"ms": timed(lambda: numpy_minmax(t, v, points), repeats) * 1e3},
            )
    ours, limit = runs["ours"]["ms"], runs["numpy"]["ms"]
    return {
        f"Query minmax {points} of {samples:.0e}: round trip, median ms": ours,
        "numpy in-process, same reduction, median ms": limit,
        "Query round trip / numpy in-process": ours / limit,
        "first Query (summarises the rows), ms": first,
    }


def query_memory(samples: int) -> dict[str, float]:
    ring = Ring(samples)
    rows = Columns(
        1.7e9 + np.arange(samples, dtype=float),
        np.random.default_rng(0).normal(size=samples),
        np.zeros(samples, np.int8),
        np.zeros(samples, np.int8),
    )
    ring.extend(rows)
    figures = {"ring MB (the history)": ring.nbytes / 1e6}
    for points in (1_000, 100_000):
        query = Query(float(rows.time[0]), float(rows.time[-1]), points, "minmax")
        tracemalloc.start()
        run_query(ring.segments(), query, "number")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures[f"query peak MB, {points} points"] = peak / 1e6
    return figures


def monitor_tables(prefix: str, channels: int, seconds: float) -> None:
    """The earlier dashboard design: monitor every channel's whole Table (a subprocess)."""
    network = Network.from_environment()
    received = [0]
    with Context("pva", conf=network.client_conf(), useenv=network.useenv) as ctx:
        subs = [
            ctx.monitor(
                f"{prefix}c{i}:Table",
                lambda v: received.__setitem__(0, received[0] + 1),
                request="record[queueSize=4]",
            )
            for i in range(channels)
        ]
        print("monitoring", flush=True)
        time.sleep(seconds)
        for sub in subs:
            sub.close()
    print(json.dumps({"updates": received[0]}), flush=True)


def rates(process: psutil.Process, seconds: float) -> tuple[float, float]:
    """CPU share of one core and bytes read per second by ``process`` over ``seconds``."""
    cpu0, io0, t0 = process.cpu_times(), process.io_counters(), time.monotonic()
    time.sleep(seconds)
    cpu1, io1, t1 = process.cpu_times(), process.io_counters(), time.monotonic()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    return cpu, (io1.read_chars - io0.read_chars) / (t1 - t0)


def dashboard(channels: int, recorded: int, seconds: float) -> dict[str, Figure]:
    from playwright.sync_api import sync_playwright

    from epics_collector.web import launch_chromium

    network = Network.loopback()
    env = network.environ()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory() as root:
        data = Path(root) / "web"
        for i in range(channels):
            prewritten_history(data, f"c{i}", recorded)
        names = [f"BHW{i:04d}" for i in range(channels)]  # PvaSource's names
        config = {
            "channels": [{"pv": n, "alias": f"c{i}"} for i, n in enumerate(names)],
            "capacity": 2 * recorded,
            "persist": True,
            "autostart": True,
        }
        setup = Path(root) / "setup.yaml"  # declared, so it starts on the written history
        setup.write_text(
            json.dumps(
                {
                    "prefix": "BHWFAC:",
                    "data_dir": str(Path(root)),
                    "devices": [{"name": "web", "type": "collector", "config": config}],
                }
            )
        )
        serve = ManagedProcess("epics_collector", ["serve", str(setup)], env=env)
        with (
            PvaSource("BHW", env, channels=channels, rate=10, count=10**9) as source,
            serve,
            Context("pva", conf=network.client_conf(), useenv=False) as ctx,
        ):
            assert source.names(channels) == names
            serve.wait_ready(lambda: "factory ready:" in serve.output(), 120)
            ctx.put("BHW:Go", 1)

            def held() -> int:
                table: Any = ctx.get("BHWFAC:web:Channels", timeout=60)
                return int(np.sum(table.value.count))

            deadline = time.monotonic() + 60
            while held() < channels * recorded and time.monotonic() < deadline:
                time.sleep(0.5)  # a poll step: the history loads at start
            assert held() >= channels * recorded, f"the written history did not load ({held()})"
            devices: Any = ctx.get("BHWFAC:Devices").value  # pyright: ignore[reportOptionalMemberAccess, reportAttributeAccessIssue]
            device = psutil.Process(int(devices.pid[0]))
            # the earlier design: every whole Table, monitored
            old = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--monitor-tables",
                    "BHWFAC:web:",
                    str(channels),
                    str(seconds * 2),
                ],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            with old:
                assert old.stdout is not None and old.stdout.readline().strip() == "monitoring"
                time.sleep(0.5 if QUICK else 2)  # the first whole tables arrive
                old_cpu, old_read = rates(psutil.Process(old.pid), seconds)
                device_cpu_old, _ = rates(device, seconds / 2)
                updates = json.loads(old.communicate(timeout=60)[0].splitlines()[-1])["updates"]
            figures["earlier design: whole tables received per s"] = updates / (seconds * 2)
            figures["earlier design: server CPU share of one core"] = old_cpu
            figures["earlier design: bytes per s from the devices"] = old_read
            figures["earlier design: device CPU share"] = device_cpu_old
            web = ManagedProcess(
                "epics_collector", ["web", "--factory", "BHWFAC:", "--port", str(port)], env=env
            )
            with web, sync_playwright() as playwright:
                web.wait_ready(lambda: "dashboard of" in web.output(), 30)
                browser = launch_chromium(playwright)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector('[data-key="BHWFAC:web:c0"][data-last]', timeout=60_000)
                time.sleep(0.5 if QUICK else 2)
                page.evaluate("window.__bytes = 0")
                started = time.monotonic()
                windows = [rates(psutil.Process(web.pid), seconds / 3) for _ in range(3)]
                new_cpu = Runs(cpu for cpu, _ in windows)  # three windows: a spread
                new_read = Runs(read for _, read in windows)
                device_cpu_new, _ = rates(device, seconds / 2)
                to_page = page.evaluate("window.__bytes") / (time.monotonic() - started)
                shown = page.get_attribute('[data-key="BHWFAC:web:c0"]', "data-last")
                browser.close()
            assert shown, "the page showed no value"
    figures["dashboard server CPU share of one core"] = new_cpu
    figures["dashboard bytes per s from the devices"] = new_read
    figures["dashboard bytes per s to the page"] = to_page
    figures["device CPU share with the dashboard"] = device_cpu_new
    figures["bytes from the devices: earlier design / dashboard"] = old_read / new_read.median
    return figures


def main() -> None:
    parser = BenchParser(__doc__, runs=5)
    parser.add_argument("--samples", type=int, default=10_000_000, quick=1_000_000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="calls per side per round")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--recorded", type=int, default=1_000_000, quick=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, quick=1.0)
    parser.add_argument("--monitor-tables", nargs=3, metavar=("PREFIX", "CHANNELS", "SECONDS"))
    args = parser.parse_args()
    if args.monitor_tables:
        prefix, channels, seconds = args.monitor_tables
        monitor_tables(prefix, int(channels), float(seconds))
        return
    query = query_round_trip(args.samples, args.points, args.repeats, args.runs)
    report(
        f"history Query: minmax {args.points} points of {args.samples:,} samples",
        query,
        {
            "<=Query round trip / numpy in-process": 2.0,
            f"<=Query minmax {args.points} of {args.samples:.0e}: round trip, median ms": 30.0,
        },
        {
            f"Query minmax {args.points} of {args.samples:.0e}: round trip, median ms": (
                "<= Query round trip / numpy in-process"
            )
        },
    )
    memory = query_memory(args.samples)
    report(f"history Query memory over {args.samples:,} samples", memory)
    web = dashboard(args.channels, args.recorded, args.seconds)
    report(
        f"web dashboard on {args.channels} channels x {args.recorded:,} samples, 10 Hz",
        web,
        {
            "<=dashboard server CPU share of one core": 0.05,
            "<=dashboard bytes per s from the devices": 100_000,
        },
    )


if __name__ == "__main__":
    main()
