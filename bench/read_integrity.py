"""Reads that cannot hurt: recording while clients loop queries, and a query flood.

1. A burst of ``--burst`` updates, flat out from a p4p source, into a persisting
   collector that also holds ``--rows`` reloaded rows of another channel. Measured three
   ways in the same run: a raw p4p client monitoring the burst (the limit), the
   collector alone, and the collector while ``--readers`` clients loop full-range minmax
   queries of the reloaded channel. Figures: updates/s, their ratios to raw p4p and to
   each other, rows lost (target 0), queries answered meanwhile.
2. A flood of ``--flood`` concurrent queries from one asyncio client: how long until all
   are answered (served or refused "busy"), how many were served, and the longest gap
   between Heartbeat updates meanwhile (the device's event loop; 1 s when never late).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from p4p.client.asyncio import Context as AsyncContext
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import BenchParser, Network, interleaved, prewritten_history, report, wait_quiet
from epics_collector.process import DeviceProcess, wait_for
from epics_collector.sim import PvaSource


def _uri(pv: str, **arguments: str) -> Any:
    return NTURI([(k, "s") for k in arguments]).wrap(pv, kws=arguments)


def raw_rate(network: Network, source: str, burst: int) -> float:
    """Updates/s a plain p4p monitor receives of one burst (the limit)."""
    got: list[float] = []
    with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
        sub = ctx.monitor(
            source + "0000",
            lambda v: got.append(time.perf_counter()),
            request="record[queueSize=100000]field()",
        )
        wait_for(lambda: len(got) >= 1, 10, "the source")
        ctx.put(source + ":Go", 1)
        wait_for(lambda: len(got) >= burst + 1, 60, "the burst")
        sub.close()
    return burst / (got[-1] - got[1])


#: One read of the reloaded channel ``a`` of collector ``prefix`` (called in a loop).
Read = Callable[[str], None]


def query_reader(network: Network) -> Callable[[], Read]:
    """Readers that each loop a full-range minmax Query over PVA."""

    def make() -> Read:
        client = Context("pva", conf=network.client_conf(), useenv=False)

        def read(prefix: str) -> None:
            request = _uri(prefix + "Query", alias="a", operator="minmax", points="10000")
            client.rpc(prefix + "Query", request, timeout=60)

        return read

    return make


def collector_rate(
    network: Network,
    source: str,
    burst: int,
    rows: int,
    readers: int,
    reader: Callable[[], Read] | None = None,
    prefix: str = "",
    data: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Updates/s the collector records of one burst, while ``readers`` loop reads.

    Each reader thread calls ``reader()`` once for its read function (default: a
    full-range minmax Query) and then calls it until the burst is recorded. ``data``:
    the collector's data directory as it is (default: a new one with ``rows`` rows of
    channel ``a``); ``extra``: more of its config.
    """
    prefix = prefix or f"BR{readers}:"
    if data is None:
        data = Path(tempfile.mkdtemp()) / "data"
        prewritten_history(data, "a", rows)
    channels = [{"pv": f"{prefix}nosource", "alias": "a"}, {"pv": source + "0000", "alias": "fast"}]
    config = {
        "channels": channels,
        "capacity": max(rows, burst * 2),
        "persist": True,
        "publish_rate": 20.0,  # Count is watched for the end of the burst (to 50 ms)
        **(extra or {}),
    }
    stop, answered = threading.Event(), [0] * readers
    make = reader or query_reader(network)

    def loop(index: int) -> None:
        read = make()
        while not stop.is_set():
            read(prefix)
            answered[index] += 1

    with DeviceProcess("collector", prefix, config, env=network.environ(), data_dir=data):
        ctx = Context("pva", conf=network.client_conf(), useenv=False, nt=False)
        wait_for(lambda: cast(Any, ctx.get(prefix + "fast:Connected"))["value"], 30, "source")
        ctx.put(prefix + "Start", {"value": 1})
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(readers)]
        for thread in threads:
            thread.start()
        wait_for(lambda: all(answered), 60, "every reader answered once")
        before = sum(answered)

        # the end of the burst from Count's monitor, not from a Query: a probe through
        # the read pool would wait behind the readers and time their pacing, not recording
        counts: list[tuple[float, int]] = []
        watch = ctx.monitor(
            prefix + "Count", lambda v: counts.append((time.time(), int(v["value"])))
        )
        wait_for(lambda: bool(counts), 10, "Count")
        wait_quiet(lambda: counts[-1][1])  # nothing arrives before Go
        target = counts[-1][1] + burst
        started = time.time()
        ctx.put(source + ":Go", {"value": 1})
        wait_for(lambda: counts[-1][1] >= target, 120, "the burst recorded")
        took = next(t for t, n in counts if n >= target) - started
        watch.close()
        stop.set()
        for thread in threads:
            thread.join(60)
        dropped = int(cast(Any, ctx.get(prefix + "Dropped"))["value"])
        overruns = int(cast(Any, ctx.get(prefix + "Overruns"))["value"])
        ctx.close()
    return {
        "rate": burst / took,
        "lost": dropped,
        "overruns": overruns,
        "queries": sum(answered) - before,
        "ended": started + took,  # (POSIX s: when the burst was recorded)
    }


def flood(network: Network, rows: int, count: int) -> dict[str, float]:
    prefix = "BFLOOD:"
    data = Path(tempfile.mkdtemp()) / "data"
    prewritten_history(data, "a", rows)
    config = {
        "channels": [{"pv": f"{prefix}nosource", "alias": "a"}],
        "capacity": rows,
        "persist": True,
    }
    with DeviceProcess("collector", prefix, config, env=network.environ(), data_dir=data):
        ctx = Context("pva", conf=network.client_conf(), useenv=False)
        beats: list[float] = []
        sub = ctx.monitor(prefix + "Heartbeat", lambda _: beats.append(time.monotonic()))
        wait_for(lambda: len(beats) >= 3, 30, "Heartbeat")

        async def send() -> list[Any]:
            client = AsyncContext("pva", conf=network.client_conf(), useenv=False)
            try:
                request = _uri(prefix + "Query", alias="a", operator="minmax", points="100000")
                return await asyncio.gather(
                    *(client.rpc(prefix + "Query", request) for _ in range(count)),
                    return_exceptions=True,
                )
            finally:
                client.close()

        mark = len(beats)
        started = time.perf_counter()
        answers = asyncio.run(send())
        took = time.perf_counter() - started
        wait_for(lambda: len(beats) >= mark + 3, 10, "Heartbeat after")
        sub.close()
        ctx.close()
    served = sum(not isinstance(a, Exception) for a in answers)
    gaps = np.diff(beats[mark - 1 :])
    return {"seconds": took, "served": served, "refused": count - served, "gap": float(gaps.max())}


def main() -> None:
    parser = BenchParser(__doc__)
    parser.add_argument("--burst", type=int, default=200_000, quick=20_000)
    parser.add_argument("--rows", type=int, default=2_000_000, quick=100_000)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--flood", type=int, default=3000, quick=100)
    args = parser.parse_args()
    network = Network.loopback()
    with PvaSource("BRSRC", network.environ(), rate=0, count=args.burst):
        runs = interleaved(
            args.runs,
            raw=lambda _: {"rate": raw_rate(network, "BRSRC", args.burst)},
            alone=lambda _: collector_rate(network, "BRSRC", args.burst, args.rows, 0),
            read=lambda _: collector_rate(network, "BRSRC", args.burst, args.rows, args.readers),
        )
    raw, alone, read = runs["raw"]["rate"], runs["alone"], runs["read"]
    flooded = flood(network, args.rows * 5, args.flood)
    report(
        "read integrity: recording while clients loop queries",
        {
            "raw p4p monitor (updates/s)": raw,
            "collector alone (updates/s)": alone["rate"],
            f"collector, {args.readers} readers (updates/s)": read["rate"],
            "alone / raw p4p": alone["rate"] / raw,
            "with readers / raw p4p": read["rate"] / raw,
            "with readers / alone": read["rate"] / alone["rate"],
            "rows lost with readers": max(read["lost"]),  # the worst round, never a median
            "overruns with readers": max(read["overruns"]),
            "queries answered during the burst": read["queries"],
        },
        {"with readers / alone": 0.95, "<=rows lost with readers": 0},
    )
    report(
        f"read integrity: {args.flood} concurrent queries on {args.rows * 5:.0e} rows",
        {
            "all answered (s)": flooded["seconds"],
            "served": flooded["served"],
            "refused busy": flooded["refused"],
            "longest Heartbeat gap (s)": flooded["gap"],
        },
        {"<=longest Heartbeat gap (s)": 2.0},
    )


if __name__ == "__main__":
    main()
