"""The Archiver Appliance retrieval API: raw throughput, optimized latency, recording beside it.

1. ``getData.raw`` of ``--rows`` samples (1e6) from a collector holding them, through the
   retrieval service (``epics-collector retrieval``, own process), read to the end by an
   HTTP client: samples/s, and the same rows read over PVA with ``Query operator=page``
   (pages of 100,000, the collector's own fastest read) in the same run: the ratio is
   the figure (target >= 0.1). The service's memory growth during the answer shows it
   streams (O(page), not O(rows)).
2. ``optimized_1000`` over a day of 10 Hz data (864,000 samples): p95 of ``--repeats``
   requests (target <= 100 ms).
3. A burst recorded by the same collector alone, and while a client loops large
   retrievals of its other channel: updates/s, their ratio (target >= 0.95), rows lost
   (target 0); raw p4p's rate of the same burst for scale. The client's thread runs at
   nice 19 (a site's clients run on other hosts); the service at its default nice 10.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import QUICK, BenchParser, Network, interleaved, prewritten_history, report
from epics_collector.process import DeviceProcess, ManagedProcess, lower_priority, wait_for
from epics_collector.sim import PvaSource
from read_integrity import Read, collector_rate, raw_rate

START = 1.7e9  # where prewritten_history's rows begin


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Service:
    """The retrieval service following ``prefix`` (a collector's, or ``--factory``'s)."""

    def __init__(self, network: Network, prefix: str, follow: str = "--collector") -> None:
        self.port = _port()
        config = Path(tempfile.mkdtemp()) / "retrieval.yaml"
        # timeout: a PV is listed once its source's metadata is read or given up on, and
        # the bench's channels have no source (the default 10 s would be waited each time)
        timeout = 0.5 if QUICK else 2  # (quick: each listing waits this long, sourceless)
        config.write_text(f"refresh: 0.5\ntimeout: {timeout}\nmax_samples: 100000000\n")
        args = ["retrieval", follow, prefix, "--port", str(self.port)]
        args += ["--config", str(config)]
        self.process = ManagedProcess("epics_collector", args, env=network.environ())

    def __enter__(self) -> Service:
        self.process.start()
        self.process.wait_ready(lambda: "retrieval on" in self.process.output(), 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def url(self, pv: str, start: float, end: float, kind: str = "raw") -> str:
        query = urllib.parse.urlencode({"pv": pv, "from": _iso(start), "to": _iso(end)})
        return f"http://127.0.0.1:{self.port}/retrieval/data/getData.{kind}?{query}"

    def read(self, url: str) -> int:
        """Bytes of the whole answer (read in 1 MiB pieces); raises on an HTTP error."""
        total = 0
        with urllib.request.urlopen(url, timeout=600) as reply:
            while piece := reply.read(1 << 20):
                total += len(piece)
        return total

    def wait_listed(self, pv: str) -> None:
        """Wait until the service lists ``pv`` (its collector idles here: "Paused")."""

        def listed() -> bool:
            url = f"http://127.0.0.1:{self.port}/retrieval/bpl/getPVStatus?pv={pv}"
            with urllib.request.urlopen(url, timeout=10) as reply:
                answer = reply.read()
            return b"Being archived" in answer or b"Paused" in answer

        wait_for(listed, 60, f"{pv} listed")


def _config(prefix: str, rows: int) -> dict[str, Any]:
    """A persisting collector whose channel ``a`` (no source) holds prewritten rows."""
    channels = [{"pv": f"{prefix}nosource", "alias": "a"}]
    return {"channels": channels, "capacity": rows, "persist": True}


def pva_pages(network: Network, prefix: str, rows: int) -> float:
    """Seconds to read every row of channel ``a`` over PVA, 100,000 a page."""
    with Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx:
        started = time.perf_counter()
        got, cursor = 0, {}
        while True:  # each page goes on from the cursor of the one before (by position)
            arguments = {"alias": "a", "start": "0", "end": "4e9", "points": "100000"}
            arguments |= {"operator": "page", **cursor}
            request = NTURI([(k, "s") for k in arguments]).wrap(prefix + "Query", kws=arguments)
            table = cast(Any, ctx.rpc(prefix + "Query", request, timeout=120))["value"]
            got += len(table["time"])
            if len(table["time"]) < 100_000:
                break
            cursor = {"epoch": str(table["epoch"][0]), "after": str(table["index"][-1])}
        took = time.perf_counter() - started
    assert got == rows, (got, rows)
    return took


@contextlib.contextmanager
def served(
    network: Network, prefix: str, rows: int, spacing: float = 1.0
) -> Iterator[tuple[Service, str]]:
    """A collector holding ``rows`` prewritten rows, and the service serving them (listed)."""
    data = Path(tempfile.mkdtemp()) / "data"
    prewritten_history(data, "a", rows, spacing=spacing)
    with (
        DeviceProcess(
            "collector", prefix, _config(prefix, rows), env=network.environ(), data_dir=data
        ),
        Service(network, prefix) as service,
    ):
        pv = f"{prefix}nosource"
        service.wait_listed(pv)
        yield service, pv


def raw_throughput(network: Network, rows: int) -> dict[str, float]:
    prefix = "BRETRAW:"
    with served(network, prefix, rows) as (service, pv):
        pva = pva_pages(network, prefix, rows)
        process = psutil.Process(service.process.pid)
        before = process.memory_info().rss
        peak = [before]
        url = service.url(pv, START - 1, START + rows)
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as reply:
            size = 0
            while piece := reply.read(1 << 20):
                size += len(piece)
                peak.append(process.memory_info().rss)
        took = time.perf_counter() - started
    return {
        "samples": rows,
        "pva_seconds": pva,
        "http_seconds": took,
        "bytes": size,
        "growth_mb": (max(peak) - before) / 1e6,
    }


def optimized_latency(network: Network, repeats: int, rows: int) -> list[float]:
    with served(network, "BRETDAY:", rows, spacing=0.1) as (service, pv):
        url = service.url(f"optimized_1000({pv})", START, START + rows * 0.1)
        service.read(url)  # warm
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            service.read(url)
            times.append(time.perf_counter() - started)
    return times


def retrieval_reader(network: Network, prefix: str) -> Any:
    """Readers that loop getData.raw of every row of channel ``a`` through the service."""
    service = Service(network, prefix).__enter__()

    def make() -> Read:
        # the looping client stands for a site's (Phoebus, a script), which runs on
        # another host: at nice 19 here it takes only CPU the collector, its source and
        # the service (nice 10, its default) leave, as it would cost none there
        lower_priority()

        def read(_: str) -> None:
            while True:  # until the service has found the collector (404 before)
                try:
                    service.read(service.url(f"{prefix}nosource", START - 1, START + 1e7))
                    return
                except urllib.error.HTTPError:
                    time.sleep(0.1)

        return read

    return make, service


def main() -> None:
    parser = BenchParser(__doc__, runs=5)  # recording beside retrievals: the noisiest ratio
    parser.add_argument("--rows", type=int, default=1_000_000, quick=100_000)
    parser.add_argument("--repeats", type=int, default=40, quick=5)
    parser.add_argument("--burst", type=int, default=200_000, quick=20_000)
    parser.add_argument("--day", type=int, default=864_000, quick=86_400, help="rows, 0.1 s apart")
    parser.add_argument("--history", type=int, default=1_000_000, quick=100_000)
    args = parser.parse_args()
    network = Network.loopback()
    raw = raw_throughput(network, args.rows)
    latencies = optimized_latency(network, args.repeats, args.day)

    def beside_retrievals(_: int) -> dict[str, float]:
        make, service = retrieval_reader(network, "BRTR:")
        try:
            return collector_rate(
                network, "BRTSRC", args.burst, args.history, 1, make, prefix="BRTR:"
            )
        finally:
            service.__exit__()

    with PvaSource("BRTSRC", network.environ(), rate=0, count=args.burst):
        runs = interleaved(
            args.runs,
            raw=lambda _: {"rate": raw_rate(network, "BRTSRC", args.burst)},
            alone=lambda _: collector_rate(
                network, "BRTSRC", args.burst, args.history, 0, prefix="BRTA:"
            ),
            read=beside_retrievals,
        )
    limit, alone, read = runs["raw"]["rate"], runs["alone"], runs["read"]
    http_rate = args.rows / raw["http_seconds"]
    pva_rate = args.rows / raw["pva_seconds"]
    report(
        f"retrieval: getData.raw of {args.rows:.0e} samples",
        {
            "PVA Query pages (samples/s)": pva_rate,
            "getData.raw over HTTP (samples/s)": http_rate,
            "getData.raw / PVA Query": http_rate / pva_rate,
            "response (MB)": raw["bytes"] / 1e6,
            "service memory growth meanwhile (MB)": raw["growth_mb"],
        },
        {"getData.raw / PVA Query": 0.1},
    )
    report(
        f"retrieval: optimized_1000 over {args.day:,} samples of 10 Hz data",
        {
            "p50 (ms)": float(np.percentile(latencies, 50) * 1e3),
            "p95 (ms)": float(np.percentile(latencies, 95) * 1e3),
        },
        {"<=p95 (ms)": 100.0},
    )
    report(
        "retrieval: recording while a client loops large retrievals",
        {
            "raw p4p monitor (updates/s)": limit,
            "collector alone (updates/s)": alone["rate"],
            "collector, retrievals looping (updates/s)": read["rate"],
            "alone / raw p4p": alone["rate"] / limit,
            "with retrievals / alone": read["rate"] / alone["rate"],
            "rows lost with retrievals": read["lost"],
            "retrievals answered during the burst": read["queries"],
        },
        {"with retrievals / alone": 0.95, "<=rows lost with retrievals": 0},
    )


if __name__ == "__main__":
    main()
