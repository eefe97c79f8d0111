"""Retention: the policy's work on a long recording, and recording beside it.

1. The engine in-process on a store of ``--rows`` (a year, 3.15e7) number rows at 1 Hz, written in
   flush-sized chunks, ending a day ago; the policy ``raw: 1d, reduce: mean_60``.
   Figures: a dry run's seconds, the run's seconds and rows reduced per second, bytes
   before and after, and whether the dry run said what the run did (target 1).
2. The unreduced year as a retired recording of a factory: the first ``Query`` (the file
   loaded, its rows summarised), then ``Query minmax`` of 1000 bins over the year, round
   trip (target <= 50 ms), against a raw p4p RPC answering the same NTTable; and the
   retrieval service's ``optimized_1000`` over the year (target p95 <= 100 ms).
3. A burst of ``--burst`` updates, flat out from a p4p source, recorded by a persisting
   collector (its own process), measured four ways in interleaved rounds: a raw p4p
   client monitoring the burst (the limit), the collector alone, the collector while
   a factory (another process) applies its policy to a retired copy of that store
   (``F:RetentionApply``, paced as in production), and a collector whose own store holds
   the year, reducing its rows past its ring in its own process (``RetentionApply``: a
   thread at nice 19, but the same interpreter; it stops with the collector after the
   burst). Figures: updates/s, with retention / alone (target >= 0.95), rows lost
   (target 0), and the share of rounds in which the reduction was still at work when
   the burst ended (1: the rounds measured it).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import QUICK, BenchParser, Network, interleaved, report, timed
from epics_collector.process import DeviceProcess, FactoryProcess, wait_for
from epics_collector.sim import PvaSource
from epics_collector.storage import (
    SPILL,
    Columns,
    RetentionChannel,
    RetentionEngine,
    RetentionRule,
    SpillStore,
    describe,
)
from read_integrity import Read, collector_rate, raw_rate
from retrieval import Service

DAY = 86400.0
FLUSH = 65_536  # rows a chunk (a collector's flush of a busy channel)
POLICY = "retention: [{match: '*', raw: 1d, reduce: mean_60}]\nretention_every: 1d\n"
RETIRED = "year.20260101-000000"
RING = 100_000  # rows of a live collector's ring (the rest of the year on disk)


def write_store(path: Path, rows: int) -> float:
    """``rows`` rows at 1 Hz ending a day ago, in flush-sized chunks; seconds it took."""
    now = time.time()
    t = now - DAY - rows + np.arange(rows, dtype=float)
    zeros = np.zeros(rows, np.int8)
    store = SpillStore(path)
    began = time.perf_counter()
    for lo in range(0, rows, FLUSH):
        part = slice(lo, lo + FLUSH)
        store.write([("a", Columns(t[part], np.sin(t[part] / 600), zeros[part], zeros[part]))])
    took = time.perf_counter() - began
    store.close()
    return took


def engine(store_path: Path, rows: int) -> dict[str, float]:
    write = write_store(store_path, rows)
    size = store_path.stat().st_size
    rule = RetentionRule(raw=DAY, reduce="mean_60")
    channels = [RetentionChannel("a", "BRET:a", "number")]
    store = SpillStore(store_path)
    try:
        now = time.time()
        began = time.perf_counter()
        dry = RetentionEngine([rule]).apply(store, "x", "x", channels, now, dry_run=True)
        dry_s = time.perf_counter() - began
        began = time.perf_counter()
        run = RetentionEngine([rule]).apply(store, "x", "x", channels, now)
        run_s = time.perf_counter() - began
    finally:
        store.close()
    same = [s.text() for s in dry.steps] == [s.text() for s in run.steps]
    return {
        "write rows/s (flushes of 65,536)": rows / write,
        "dry run s": dry_s,
        "run s": run_s,
        "rows reduced per s": run.rows_reduced / run_s,
        "rows reduced": run.rows_reduced,
        "rows written (mean_60 bins)": sum(s.written for s in run.steps),
        "MB before": size / 1e6,
        "MB after": store_path.stat().st_size / 1e6,
        "dry run said what the run did": float(same),
    }


class PolicyRun:
    """A policy applied by a ``RetentionApply`` call, started by the first read."""

    apply_pv = ""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.started = self.ended = 0.0
        self.rows = 0

    def reader(self) -> Read:
        """The first call starts the policy's work (in a thread); later calls idle."""
        begun = threading.Event()

        def apply() -> None:
            with Context("pva", conf=self.network.client_conf(), useenv=False, nt=False) as ctx:
                uri = NTURI([]).wrap(self.apply_pv, kws={})
                self.started = time.time()
                answer: Any = ctx.rpc(self.apply_pv, uri, timeout=600)
                self.rows = int(sum(answer["value"]["rows"]))
                self.ended = time.time()

        def read(_: str) -> None:
            if not begun.is_set():
                begun.set()
                threading.Thread(target=apply, daemon=True).start()
                time.sleep(0.2)  # (the store is open)
            else:
                time.sleep(0.05)

        return read


class Reduction(PolicyRun):
    """A factory with a fresh retired copy of the store; its policy applied on the first read."""

    apply_pv = "BRETF:RetentionApply"

    def __init__(self, network: Network, store: Path) -> None:
        super().__init__(network)
        self.root = Path(tempfile.mkdtemp())
        folder = self.root / "data" / RETIRED
        (folder / SPILL).parent.mkdir(parents=True)
        shutil.copy(store, folder / SPILL)
        channels = [{"alias": "a", "pv": "BRET:a", "kind": "number"}]
        describe(folder, name="year", prefix="BRET:year:", channels=channels, destroyed=1.0)
        config = self.root / "factory.yaml"
        config.write_text(POLICY)
        self.process = FactoryProcess(
            "BRETF:", data_dir=self.root / "data", env=network.environ(), config=config
        )

    def __enter__(self) -> Reduction:
        self.process.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class LiveReduction(PolicyRun):
    """A collector's data directory holding the store: it reduces its own rows on disk.

    The collector stops when its burst is recorded, and its policy's work with it: the
    call then answers the rows reduced until then.
    """

    apply_pv = "BRETL:RetentionApply"
    config: ClassVar[dict[str, Any]] = {
        "retention": [{"match": "*", "raw": "1d", "reduce": "mean_60"}],
        "retention_every": "1d",
    }

    def __init__(self, network: Network, store: Path) -> None:
        super().__init__(network)
        self.root = Path(tempfile.mkdtemp())
        self.data = self.root / "data"
        (self.data / "spill").mkdir(parents=True)
        shutil.copy(store, self.data / "spill" / "history.sqlite")

    def __enter__(self) -> LiveReduction:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _raw_table_server(
    network: Network, answer: Any, ready: threading.Event, stop: threading.Event
) -> None:
    """A raw p4p RPC ``BRETRAW:Query`` answering ``answer`` (the same NTTable): the limit."""
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    pv = SharedPV(nt=NTScalar("d"), initial=0.0)

    @pv.rpc
    def _(pv: Any, op: Any) -> None:
        op.done(answer)

    provider = StaticProvider("raw table")
    provider.add("BRETRAW:Query", pv)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        ready.set()
        stop.wait()


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return bytes(reply.read())


def year_reads(network: Network, store: Path, repeats: int, rounds: int) -> dict[str, Any]:
    """A year of rows as a retired recording: Query minmax 1000 and optimized_1000 over it."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "data" / RETIRED
        (folder / SPILL).parent.mkdir(parents=True)
        shutil.copy(store, folder / SPILL)
        channels = [{"alias": "a", "pv": "BRET:a", "kind": "number"}]
        describe(folder, name="year", prefix="BRET:year:", channels=channels, destroyed=1.0)
        with (
            FactoryProcess("BRETY:", data_dir=Path(root) / "data", env=network.environ()),
            Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx,
        ):
            ask = {"recording": RETIRED, "alias": "a", "points": "1000", "operator": "minmax"}
            uri = NTURI([(k, "s") for k in ask]).wrap("BRETY:Query", kws=ask)
            began = time.perf_counter()
            answer: Any = ctx.rpc("BRETY:Query", uri, timeout=600)  # loads, summarises
            first = time.perf_counter() - began
            ready, stop = threading.Event(), threading.Event()
            server = threading.Thread(
                target=_raw_table_server, args=(network, answer, ready, stop), daemon=True
            )
            server.start()
            ready.wait(30)
            raw_uri = NTURI([]).wrap("BRETRAW:Query", kws={})
            runs = interleaved(
                rounds,
                ours=lambda _: {"ms": timed(lambda: ctx.rpc("BRETY:Query", uri), repeats) * 1e3},
                raw=lambda _: {
                    "ms": timed(lambda: ctx.rpc("BRETRAW:Query", raw_uri), repeats) * 1e3
                },
            )
            stop.set()
            with Service(network, "BRETY:", follow="--factory") as service:
                names = f"http://127.0.0.1:{service.port}/retrieval/bpl/getAllPVs"
                wait_for(lambda: b"BRET:a" in _fetch(names), 60, "BRET:a listed")
                t = np.asarray(answer["value"]["time"])
                url = service.url("optimized_1000(BRET:a)", float(t[0]) - 60, float(t[-1]) + 60)
                service.read(url)  # (warm)
                times = []
                for _ in range(repeats * rounds):
                    began = time.perf_counter()
                    service.read(url)
                    times.append(time.perf_counter() - began)
    ours, raw = runs["ours"]["ms"], runs["raw"]["ms"]
    return {
        "first Query (loads the file, summarises), s": first,
        "Query minmax 1000 over the year, round trip ms": ours,
        "raw p4p RPC of the same NTTable, ms": raw,
        "Query / raw p4p RPC": ours / raw,
        "retrieval optimized_1000 over the year, p95 ms": float(np.percentile(times, 95)) * 1e3,
        "retrieval optimized_1000 over the year, median ms": float(np.median(times)) * 1e3,
    }


def live_reads(network: Network, store: Path, repeats: int, rounds: int) -> dict[str, Any]:
    """The year in a live collector's store, its ring the newest ``RING`` rows: reads past it.

    A page of 50,000 rows from the middle of the year (on disk) against one from the ring
    (in memory), and ``Query minmax`` of 1000 bins over the whole year, which reads every
    row on disk (no summaries of the rows past the ring: the gap that rollups in the
    store would close), against the same over the ring's rows alone.
    """
    with LiveReduction(network, store) as live:
        config = {"channels": [{"pv": "BRETQ:nosource", "alias": "a"}], "capacity": RING}
        config |= {"persist": True}
        with (
            DeviceProcess("collector", "BRETQ:", config, env=network.environ(), data_dir=live.data),
            Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx,
        ):

            def query(**ask: Any) -> Any:
                text = {"alias": "a", **{k: str(v) for k, v in ask.items()}}
                uri = NTURI([(k, "s") for k in text]).wrap("BRETQ:Query", kws=text)
                return ctx.rpc("BRETQ:Query", uri, timeout=600)

            with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
                first, last = db.execute("SELECT min(first), max(last) FROM chunks").fetchone()
            ring_from = last - RING + 1
            middle = (first + ring_from) / 2
            runs = interleaved(
                rounds,
                disk_page=lambda _: {
                    "ms": timed(
                        lambda: query(start=middle, points=50_000, operator="page"), repeats
                    )
                    * 1e3
                },
                ring_page=lambda _: {
                    "ms": timed(
                        lambda: query(start=ring_from + 1000, points=50_000, operator="page"),
                        repeats,
                    )
                    * 1e3
                },
                ring_minmax=lambda _: {
                    "ms": timed(
                        lambda: query(start=ring_from, end=last, points=1000, operator="minmax"),
                        repeats,
                    )
                    * 1e3
                },
            )
            began = time.perf_counter()
            query(start=first, end=last, points=1000, operator="minmax")
            year = time.perf_counter() - began
    disk, ring = runs["disk_page"]["ms"], runs["ring_page"]["ms"]
    return {
        "page of 50,000 rows on disk, ms": disk,
        "page of 50,000 rows in the ring, ms": ring,
        "page on disk / in the ring": disk / ring,
        f"Query minmax 1000 over the ring's {RING:,} rows, ms": runs["ring_minmax"]["ms"],
        "Query minmax 1000 over the year (every row read from disk), s": year,
    }


def main() -> None:
    parser = BenchParser(__doc__, runs=5)
    parser.add_argument("--rows", type=int, default=31_536_000, quick=4_000_000, help="a year")
    parser.add_argument("--burst", type=int, default=200_000, quick=20_000)
    parser.add_argument("--repeats", type=int, default=10, quick=3, help="reads per side a round")
    args = parser.parse_args()
    network = Network.loopback()
    with tempfile.TemporaryDirectory() as root:
        store = Path(root) / "history.sqlite"
        report(
            f"retention: the engine on {args.rows:.0e} rows at 1 Hz (mean_60 past a day)",
            engine(store, args.rows),
            {"dry run said what the run did": 1.0},
        )
        write_store(store.with_name("fresh.sqlite"), args.rows)
        fresh = store.with_name("fresh.sqlite")
        report(
            f"retention: reads of {args.rows:.2e} rows at 1 Hz (a year is 3.15e7), retired",
            year_reads(network, fresh, args.repeats, args.runs),
            {
                "<=Query minmax 1000 over the year, round trip ms": 50.0,
                "<=retrieval optimized_1000 over the year, p95 ms": 100.0,
            },
        )

        if not QUICK:  # (figures without a target: make bench measures them)
            report(
                f"retention: reads of {args.rows:.2e} rows at 1 Hz in a live collector's "
                f"store, {RING:,} in its ring",
                live_reads(network, fresh, args.repeats, args.runs),
                {},
            )
        else:
            print("reads past a live ring: left to make bench (no target)")

        def measured(reduction: PolicyRun, **collector: Any) -> dict[str, float]:
            figures = collector_rate(
                network, "BRETSRC", args.burst, 1, 1, reduction.reader, **collector
            )
            wait_for(lambda: reduction.ended > 0, 600, "the reduction")
            return figures | {
                "reduced": reduction.rows,
                "took": reduction.ended - reduction.started,
                "outlasted": float(reduction.ended > figures["ended"]),
            }

        def beside(_: int) -> dict[str, float]:
            with Reduction(network, fresh) as reduction:
                return measured(reduction, prefix="BRETR:")

        def live(_: int) -> dict[str, float]:
            with LiveReduction(network, fresh) as reduction:
                return measured(
                    reduction, prefix="BRETL:", data=reduction.data, extra=reduction.config
                )

        with PvaSource("BRETSRC", network.environ(), rate=0, count=args.burst):
            runs = interleaved(
                args.runs,
                raw=lambda _: {"rate": raw_rate(network, "BRETSRC", args.burst)},
                alone=lambda _: collector_rate(
                    network, "BRETSRC", args.burst, 1, 0, prefix="BRETA:"
                ),
                beside=beside,
                live=live,
            )
    raw, alone, with_retention = runs["raw"]["rate"], runs["alone"], runs["beside"]
    own = runs["live"]
    figures: dict[str, Any] = {
        "raw p4p received per s": raw,
        "collector alone, recorded per s": alone["rate"],
        "collector beside retention, recorded per s": with_retention["rate"],
        "alone / raw p4p": alone["rate"] / raw,
        "beside retention / raw p4p": with_retention["rate"] / raw,
        "beside retention / alone": with_retention["rate"] / alone["rate"],
        "rows lost beside retention": with_retention["lost"],
        "rows the policy reduced meanwhile": with_retention["reduced"],
        "the policy's seconds (paced)": with_retention["took"],
        "rounds the policy outlasted the burst": with_retention["outlasted"],
    }
    report(
        f"retention: recording {args.burst:,} updates while a factory reduces {args.rows:.0e} rows",
        figures,
        {
            "beside retention / alone": 0.95,
            "<= rows lost beside retention": 0,
            "rounds the policy outlasted the burst": 1.0,
        },
    )
    report(
        f"retention: recording {args.burst:,} updates while the collector reduces its own "
        f"{args.rows:.0e} rows on disk (in its process)",
        {
            "collector reducing its own rows, recorded per s": own["rate"],
            "reducing its own / alone": own["rate"] / alone["rate"],
            "reducing its own / raw p4p": own["rate"] / raw,
            "rows lost reducing its own": own["lost"],
            "rows it reduced meanwhile": own["reduced"],
            "rounds its policy outlasted the burst": own["outlasted"],
        },
        {
            "reducing its own / alone": 0.95,
            "<= rows lost reducing its own": 0,
            "rounds its policy outlasted the burst": 1.0,
        },
    )


if __name__ == "__main__":
    main()
