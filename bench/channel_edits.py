"""Channels added at run time, and the management API's listing of many PVs.

1. A collector (own process) records two sources posting flat out at ``--rate`` each
   while ``--adds`` channels (of two other counter servers) are added one by one with
   its ``Add`` RPC. Measured: each Add's round trip (p50, p95, max), and the updates of
   the two recorded sources lost meanwhile (they must all be there). The reference, in
   the same run: the round trip of a raw p4p RPC (a ``SharedPV`` whose handler answers
   a string) from the same client.
2. ``GET /mgmt/bpl/getAllPVs?limit=-1`` (and a glob, and a regex) of ``--pvs`` PV names,
   as the retrieval service lists them once its collectors are read, against the same
   server (uvicorn, FastAPI) answering the same names as a precomputed JSON list.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

import numpy as np
from p4p import Value
from p4p.client.thread import Context
from p4p.nt import NTURI, NTScalar

from _common import SPAWN, BenchParser, Network, ServerProcess, interleaved, report
from epics_collector.process import DeviceProcess, wait_until
from epics_collector.pva import Client
from epics_collector.sim import PvaSource


def _rpc_server(network: Network, ready: Any, go: Any, stop: Any, result: Any) -> None:
    """A raw p4p RPC PV ``RAW:Add`` answering a string, as the collector's Add does."""
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    pv = SharedPV(nt=NTScalar("s"), initial="")

    @pv.rpc
    def _(pv: Any, op: Any) -> None:
        op.done(NTScalar("s").wrap(f"{op.value()['query']['channel']}: added"))

    provider = StaticProvider("raw rpc")
    provider.add("RAW:Add", pv)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        ready.set()
        stop.wait()


def _get(ctx: Context, name: str) -> Any:
    return cast(Any, ctx.get(name))


def _int(ctx: Context, name: str) -> int:
    value = _get(ctx, name)
    return int(value["value"] if isinstance(value, Value) else value)


def _call(ctx: Context, name: str, channel: str) -> float:
    request = NTURI([("channel", "s")]).wrap(name, kws={"channel": channel})
    started = time.perf_counter()
    ctx.rpc(name, request, timeout=30)
    return time.perf_counter() - started


def add_latencies(network: Network, adds: int, rate: float, burst: int) -> dict[str, float]:
    """Add ``adds`` channels to a collector recording two flat-out sources."""
    per = adds // 2
    with (
        TemporaryDirectory() as data,
        PvaSource("CEB", network.environ(), channels=2, rate=rate, count=burst),
        PvaSource("CEX0:", network.environ(), channels=per, rate=0.2, timeout=120),
        PvaSource("CEX1:", network.environ(), channels=adds - per, rate=0.2, timeout=120),
        Context("pva", conf=network.client_conf(), useenv=False) as ctx,
    ):
        config = {
            "channels": [{"pv": "CEB0000", "alias": "b0"}, {"pv": "CEB0001", "alias": "b1"}],
            "autostart": True,
            "capacity": burst + 10,
        }
        with DeviceProcess("collector", "CE:", config, env=network.environ(), data_dir=Path(data)):
            wait_until(lambda: all(_get(ctx, "CE:Channels").value["connected"]), 30)
            with Client(network) as client:
                client.put("CEB:Go", 1)
            names = [f"CEX0:{k:04d}" for k in range(per)]
            names += [f"CEX1:{k:04d}" for k in range(adds - per)]
            took = []
            for k, name in enumerate(names):
                took.append(_call(ctx, "CE:Add", json.dumps({"pv": name, "alias": f"x{k}"})))
            expected = 2 * (burst + 1)  # (each source's initial value, then the burst)

            def counts() -> list[int]:
                table = _get(ctx, "CE:Channels").value
                return [int(c) for c in table["count"][:2]]

            wait_until(lambda: sum(counts()) >= expected, 120)
            wait_until(lambda: len(_get(ctx, "CE:Channels").value["alias"]) == adds + 2, 30)
            lost = expected - sum(counts()) + _int(ctx, "CE:Dropped")
            overruns = _int(ctx, "CE:Overruns")
    return {
        "p50": float(np.percentile(took, 50)) * 1e3,
        "p95": float(np.percentile(took, 95)) * 1e3,
        "max": max(took) * 1e3,
        "lost": float(lost),
        "overruns": float(overruns),
    }


def raw_latencies(network: Network, calls: int) -> dict[str, float]:
    with (
        ServerProcess(_rpc_server, network),
        Context("pva", conf=network.client_conf(), useenv=False) as ctx,
    ):
        took = [_call(ctx, "RAW:Add", f"x{k}") for k in range(calls)]
    return {
        "p50": float(np.percentile(took, 50)) * 1e3,
        "p95": float(np.percentile(took, 95)) * 1e3,
    }


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listing_server(port: int, pvs: int, raw: bool, ready: Any) -> None:
    """The service's app over an archive of ``pvs`` PV names (or the raw JSON list)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from epics_collector.core import AccessPolicy
    from epics_collector.retrieval._app import Retrieval, create_app
    from epics_collector.retrieval._archive import Archive, Recording
    from epics_collector.retrieval._mgmt import add_mgmt

    names = [f"LAB:{k // 1000:03d}:SIG{k % 1000:03d}" for k in range(pvs)]
    if raw:
        app = FastAPI()
        listed = sorted(names)

        @app.get("/mgmt/bpl/getAllPVs")
        async def _() -> JSONResponse:
            return JSONResponse(listed)

    else:
        archive = Archive(cast(Any, None))
        archive.recordings = {
            n: [Recording("C:", f"a{k}", n, "number")] for k, n in enumerate(names)
        }
        retrieval = Retrieval(AccessPolicy(), 10_000_000, archive)
        app = create_app(retrieval)
        add_mgmt(app, retrieval, "bench")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    ready.set()
    server.run()


def listing(pvs: int, repeats: int, raw: bool) -> dict[str, float]:
    port = _port()
    ready = SPAWN.Event()
    process = SPAWN.Process(target=_listing_server, args=(port, pvs, raw, ready), daemon=True)
    process.start()
    try:
        ready.wait(60)
        base = f"http://127.0.0.1:{port}/mgmt/bpl/getAllPVs"

        def get(query: str) -> tuple[float, int]:
            started = time.perf_counter()
            with urllib.request.urlopen(base + query, timeout=60) as reply:
                found = len(json.loads(reply.read()))
            return time.perf_counter() - started, found

        wait_until(lambda: _answers(base), 60)
        figures: dict[str, float] = {}
        queries = {"all": "?limit=-1"}
        if not raw:
            queries |= {"glob": "?pv=LAB:05*&limit=-1", "regex": "?regex=LAB:0.*SIG00.&limit=-1"}
        for name, query in queries.items():
            times, found = [], 0
            for _ in range(repeats):
                took, found = get(query)
                times.append(took)
            figures[f"{name} p95 (ms)"] = float(np.percentile(times, 95)) * 1e3
            figures[f"{name} (PVs)"] = float(found)
        return figures
    finally:
        process.terminate()
        process.join(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "?limit=1", timeout=5):
            return True
    except OSError:
        return False


def main() -> None:
    parser = BenchParser(__doc__, runs=3)
    parser.add_argument("--adds", type=int, default=10_000, quick=1000)
    parser.add_argument("--rate", type=float, default=5000.0, help="updates/s per source")
    parser.add_argument("--burst", type=int, default=100_000, quick=20_000)
    parser.add_argument("--pvs", type=int, default=100_000, quick=20_000)
    parser.add_argument("--repeats", type=int, default=20, quick=5)
    args = parser.parse_args()
    network = Network.loopback()
    ours = add_latencies(network, args.adds, args.rate, args.burst)
    raw = raw_latencies(network, min(args.adds, 2000))
    report(
        f"collector: {args.adds:,} channels added one by one while 2 sources post "
        f"{args.rate:,.0f}/s each",
        {
            "Add p50 (ms)": ours["p50"],
            "Add p95 (ms)": ours["p95"],
            "Add max (ms)": ours["max"],
            "raw p4p RPC p95 (ms)": raw["p95"],
            "ratio Add p95 / raw p4p RPC p95": ours["p95"] / raw["p95"],
            "updates lost meanwhile": ours["lost"],
            "overruns meanwhile": ours["overruns"],
        },
        {"<=Add p95 (ms)": 50.0, "<=updates lost meanwhile": 0},
    )
    runs = interleaved(
        args.runs,
        ours=lambda _: listing(args.pvs, args.repeats, raw=False),
        raw=lambda _: listing(args.pvs, args.repeats, raw=True),
    )
    mine, plain = runs["ours"], runs["raw"]
    ratio = mine["all p95 (ms)"] / plain["all p95 (ms)"]
    report(
        f"retrieval: mgmt/bpl/getAllPVs over {args.pvs:,} PVs",
        {
            "all p95 (ms)": mine["all p95 (ms)"],
            "glob p95 (ms)": mine["glob p95 (ms)"],
            "regex p95 (ms)": mine["regex p95 (ms)"],
            "raw JSON list p95 (ms)": plain["all p95 (ms)"],
            "ratio ours / raw JSON list": ratio,
            "PVs listed": mine["all (PVs)"],
        },
        {"<=all p95 (ms)": 200.0},
    )


if __name__ == "__main__":
    main()
