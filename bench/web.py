"""Web dashboard: server CPU, bytes/s per page, and PV-update-to-page delay in a browser.

10 channels of a p4p source post at 10 Hz; a collector records them (history PVs
published at 10 Hz); the dashboard server follows the collector's history PVs; one
headless Chromium page (Debian's, driven by Playwright) shows them. The raw limit measured
in the same run: the delay of a raw p4p monitor of the same source PVs (a client that
shows a PV can not be faster than receiving it).
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from p4p.client.thread import Context
from playwright.sync_api import sync_playwright

from _common import BenchParser, Network, report
from epics_collector.client import Factory
from epics_collector.process import FactoryProcess, ManagedProcess
from epics_collector.pva import Client
from epics_collector.sim import PvaSource
from epics_collector.web import launch_chromium


def raw_delays(network: Network, names: list[str], seconds: float, go: Any) -> np.ndarray:
    """Receive time minus source timestamp of every update of ``names`` (raw p4p)."""
    delays: list[float] = []
    lock = threading.Lock()

    def on_update(value: Any) -> None:
        with lock:
            delays.append(time.time() - value.timestamp)

    with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
        subs = [ctx.monitor(n, on_update, request="record[queueSize=1000]field()") for n in names]
        time.sleep(0.5)
        with lock:
            delays.clear()
        go()
        time.sleep(seconds)
        for sub in subs:
            sub.close()
    return np.array(delays)


def main() -> None:
    parser = BenchParser(__doc__)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0, quick=1.0)
    args = parser.parse_args()
    network = Network.loopback()
    env = network.environ()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    count = int(args.rate * (args.seconds + 5))
    with (
        tempfile.TemporaryDirectory() as root,
        PvaSource("BW", env, channels=args.channels, rate=args.rate) as source,
        FactoryProcess("BWFAC:", data_dir=Path(root), env=env),
        Factory.connect("BWFAC:", network=network) as factory,
        Client(network) as client,
    ):
        names = source.names(args.channels)

        def go() -> None:
            client.put("BW:Rate", args.rate)
            client.put("BW:Count", count)
            client.put("BW:Go", 1)

        raw = raw_delays(network, names, args.seconds, go)
        time.sleep(count / args.rate - args.seconds + 1)  # let the raw burst finish
        channels = [{"pv": n, "alias": f"c{i}"} for i, n in enumerate(names)]
        factory.create_collector("web", channels, autostart=True, publish_rate=10)
        web = ManagedProcess(
            "epics_collector", ["web", "--factory", "BWFAC:", "--port", str(port)], env=env
        )
        with web, sync_playwright() as playwright:
            web.wait_ready(lambda: "dashboard of" in web.output(), 30)
            browser = launch_chromium(playwright)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector('[data-key="BWFAC:web:c0"]', timeout=20_000)
            server = psutil.Process(web.pid)
            page.evaluate("window.__delays = []; window.__bytes = 0")
            cpu0, t0 = server.cpu_times(), time.monotonic()
            go()
            time.sleep(args.seconds)
            cpu1, t1 = server.cpu_times(), time.monotonic()
            measured = json.loads(
                page.evaluate("JSON.stringify([window.__delays, window.__bytes])")
            )
            browser.close()
    delays, sent = np.array(measured[0]), measured[1]
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    p50, p99 = np.percentile(delays, [50, 99]) if len(delays) else (np.nan, np.nan)
    raw50, raw99 = np.percentile(raw, [50, 99])
    report(
        f"web dashboard: {args.channels} channels at {args.rate:g} Hz, one page",
        {
            "raw p4p monitor delay p50 (ms)": raw50 * 1e3,
            "raw p4p monitor delay p99 (ms)": raw99 * 1e3,
            "page delay p50 (ms)": p50 * 1e3,
            "page delay p99 (ms)": p99 * 1e3,
            "points received by the page per s": len(delays) / args.seconds,
            "points posted per s": args.channels * args.rate,
            "server CPU share of one core": cpu,
            "bytes per s to the page": sent / args.seconds,
            "page delay p50 / raw p4p delay p50": p50 / raw50,
        },
    )


if __name__ == "__main__":
    main()
