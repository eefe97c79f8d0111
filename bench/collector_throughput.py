"""Collector throughput, load, history serving and memory, as ratios to raw p4p in this run.

1. Flat out: one p4p source posts N scalars as fast as it can; updates/s recorded
   losslessly by a collector (own process) vs received by a raw p4p monitor.
2. Load: 1000 channels at 10 Hz; dropped samples and the collector's CPU share of a core.
3. Serving: get of a 1e6-sample ``Value`` history vs a raw p4p get of 1e6 doubles.
4. Memory: resident bytes per recorded sample.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

import psutil
from p4p.client import raw as raw_client
from p4p.client.thread import Context

from _common import (
    QUICK,
    BenchParser,
    Network,
    ServerProcess,
    gathered,
    interleaved,
    prewritten_history,
    report,
    wait_quiet,
)
from epics_collector.process import DeviceProcess, wait_until
from epics_collector.pva import Client
from epics_collector.sim import PvaSource
from pva_baseline import array_server

QUEUE = 100_000


def source(
    network: Network, prefix: str, channels: int, rate: float, count: int, length: int = 0
) -> PvaSource:
    """Start ``sim.pva_source`` (stop it with ``.stop()``)."""
    env = network.environ()
    return PvaSource(prefix, env, channels=channels, rate=rate, count=count, length=length).start()


def raw_flat_out(network: Network, count: int, length: int = 0) -> dict[str, float]:
    """A raw p4p monitor of a source posting ``count`` updates (arrays if ``length``)."""
    received, times = [0], [0.0]
    lock = threading.Lock()

    def on_update(value: Any) -> None:
        with lock:
            received[0] += 1
            times[0] = time.monotonic()

    src = source(network, "RAW:", 1, 0, count, length)
    try:
        with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
            sub = ctx.monitor("RAW:0000", on_update, request=f"record[queueSize={QUEUE}]field()")
            wait_quiet(lambda: received[0], quiet=0.3)
            received[0] = 0
            started = time.monotonic()
            ctx.put("RAW::Go", 1)
            wait_quiet(lambda: received[0])
            sub.close()
    finally:
        src.stop()
    rate = received[0] / (times[0] - started)
    figures = {"received per s": rate, "lost": count - received[0]}
    if length:
        figures["MB per s"] = rate * length * 8 / 1e6
    return figures


def collector_flat_out(
    network: Network,
    count: int,
    data: Path,
    channel: dict[str, Any] | None = None,
    length: int = 0,
    per_output: int = 1,
    capacity: int | None = None,
) -> dict[str, float]:
    """A collector (own process) recording a source posting ``count`` updates flat out.

    ``channel`` adds settings to the channel (compression, kind); ``per_output`` is how
    many inputs make one recorded row (N of N-to-1 compression).
    """
    src = source(network, "FLAT:", 1, 0, count, length)
    config = {
        "channels": [{"pv": "FLAT:0000", **(channel or {})}],
        "capacity": capacity or count + 10,
        "queue_size": QUEUE,
        "publish_rate": 20,
    }
    try:
        with (
            DeviceProcess("collector", "BC1:", config, env=network.environ(), data_dir=data),
            Client(network) as client,
        ):
            wait_until(lambda: bool(client.get("BC1:FLAT_0000:Connected")), 10)
            client.put("BC1:Start", 1)
            time.sleep(0.3)
            base = client.get("BC1:Count")
            client.put("FLAT::Go", 1)
            started = time.monotonic()
            last, last_change = base, started
            while time.monotonic() - last_change < 1.0:
                now = client.get("BC1:Count")
                if now != last:
                    last, last_change = now, time.monotonic()
                time.sleep(0.02)
            dropped = client.get("BC1:Dropped")
    finally:
        src.stop()
    inputs = (last - base) * per_output
    figures = {
        "inputs recorded per s": inputs / (last_change - started),
        "rows recorded": last - base,
        "inputs lost": count - inputs,
        "dropped": dropped,
    }
    if length:
        figures["MB per s"] = figures["inputs recorded per s"] * length * 8 / 1e6
    return figures


def many_channels(network: Network, channels: int, seconds: float, data: Path) -> dict[str, float]:
    """``channels`` PVs at 10 Hz for ``seconds``: dropped, completeness, CPU share."""
    count = int(seconds * 10)
    src = source(network, "MANY:", channels, 10, count)
    names = [f"MANY:{i:04d}" for i in range(channels)]
    config = {"channels": names, "capacity": count + 10, "connect_timeout": 30}
    try:
        with (
            DeviceProcess(
                "collector", "BC2:", config, env=network.environ(), data_dir=data
            ) as device,
            Client(network, timeout=30) as client,
        ):
            wait_until(lambda: all(client.get("BC2:Channels").value.connected), 60)
            proc = psutil.Process(device.process.pid)
            client.put("BC2:Start", 1)
            time.sleep(0.5)
            base = client.get("BC2:Count")
            cpu0, t0 = proc.cpu_times(), time.monotonic()
            client.put("MANY::Go", 1)
            wait_until(lambda: client.get("MANY::Posted") == count, seconds + 60)
            cpu1, t1 = proc.cpu_times(), time.monotonic()
            wait_until(lambda: client.get("BC2:Count") - base == channels * count, 10)
            recorded = client.get("BC2:Count") - base
            dropped = client.get("BC2:Dropped")
    finally:
        src.stop()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    return {
        "channels": channels,
        "seconds": t1 - t0,
        "updates per s": channels * count / (t1 - t0),
        "missing": channels * count - recorded,
        "dropped": dropped,
        "CPU share of one core": cpu,
    }


def queue_memory(network: Network, size: int) -> dict[str, float]:
    """Resident memory of a p4p monitor queue holding ``size`` undrained scalar updates.

    What a collector's default queue costs while a burst is queued (pvxs keeps the
    freed Values for reuse afterwards).
    """
    src = source(network, "QMEM:", 1, 0, size)
    wakeups = [0]
    try:
        with Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx:
            request = f"record[queueSize={size}]field()"
            sub = raw_client.Context.monitor(ctx, "QMEM:0000", lambda: wakeups.append(1), request)
            time.sleep(1.0)
            while sub.pop() is not None:  # the initial update
                pass
            before = psutil.Process().memory_info().rss
            ctx.put("QMEM::Go", 1)
            wait_until(lambda: cast(Any, ctx.get("QMEM::Posted"))["value"] == size, 60)
            time.sleep(0.5)
            after = psutil.Process().memory_info().rss
            queued = 0
            while sub.pop() is not None:
                queued += 1
            sub.close()
    finally:
        src.stop()
    return {
        "updates queued": queued,
        "MB while queued": (after - before) / 1e6,
        "bytes per queued update": (after - before) / max(1, queued),
    }


def raw_many_channels(network: Network, channels: int, seconds: float) -> dict[str, float]:
    """The same load into raw p4p monitors: one thread pops every update (no unwrapping).

    p4p's thread client loses a subscription whose first wakeup comes before ``monitor``
    has returned ("Lost Subscription update"; pvxs never wakes it again): with 100 fast
    connects, 41 of them stalled for good, and the old baseline counted half the load.
    Here a wakeup names its channel and the drain thread retries until the subscription
    exists. Timed as the collector is: from Go until the source has posted everything;
    then every update must have arrived (a baseline that lost updates is not one).
    """
    count = int(seconds * 10)
    src = source(network, "RAWMANY:", channels, 10, count)
    woken: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    subs: dict[int, Any] = {}
    received = [0]

    def drain() -> None:
        while (index := woken.get()) is not None:
            sub = subs.get(index)
            if sub is None:  # woken before monitor() returned: try again
                time.sleep(0.001)
                woken.put(index)
                continue
            while sub.pop() is not None:
                received[0] += 1

    drainer = threading.Thread(target=drain, name="raw drain")
    drainer.start()
    try:
        with Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx:
            request = f"record[queueSize={QUEUE}]field()"
            for i in range(channels):
                wake = lambda i=i: woken.put(i)  # noqa: E731
                subs[i] = raw_client.Context.monitor(ctx, f"RAWMANY:{i:04d}", wake, request)
            if not wait_until(lambda: received[0] >= channels, 60):
                raise RuntimeError(f"raw p4p: {received[0]} of {channels} channels connected")
            wait_quiet(lambda: received[0], quiet=1.0)
            received[0] = 0
            proc = psutil.Process()
            cpu0, t0 = proc.cpu_times(), time.monotonic()
            ctx.put("RAWMANY::Go", 1)
            posted = lambda: cast(Any, ctx.get("RAWMANY::Posted"))["value"]  # noqa: E731
            wait_until(lambda: posted() == count, seconds + 60)
            cpu1, t1 = proc.cpu_times(), time.monotonic()
            wait_until(lambda: received[0] >= channels * count, 30)
            missing = channels * count - received[0]
            for sub in subs.values():
                sub.close()
    finally:
        woken.put(None)
        drainer.join()
        src.stop()
    if missing:
        raise RuntimeError(f"the raw p4p baseline missed {missing} updates: not a baseline")
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    return {"updates per s": channels * count / (t1 - t0), "CPU share of one core": cpu}


def history_get(network: Network, samples: int, data: Path, gets: int = 20) -> dict[str, float]:
    """Get of a ``samples``-row Value history vs raw p4p; resident bytes per sample."""
    prewritten_history(data, "HIST", samples)
    figures: dict[str, float] = {}
    empty_config = {"channels": [{"pv": "NOPE:HIST", "alias": "HIST"}], "capacity": samples}
    with DeviceProcess(
        "collector", "BC3:", empty_config, env=network.environ(), data_dir=data / "empty"
    ) as empty:
        time.sleep(0.3 if QUICK else 1.0)
        rss_empty = psutil.Process(empty.process.pid).memory_info().rss
    config = {**empty_config, "persist": True}
    with (
        DeviceProcess("collector", "BC4:", config, env=network.environ(), data_dir=data) as device,
        Client(network, timeout=30) as client,
    ):
        time.sleep(0.3 if QUICK else 1.0)
        proc = psutil.Process(device.process.pid)
        figures["resident bytes per sample, unwatched"] = (
            proc.memory_info().rss - rss_empty
        ) / samples
        started = time.perf_counter()
        assert len(client.get("BC4:HIST:Value")) == samples
        figures["first get ms (computes the PV)"] = (time.perf_counter() - started) * 1e3
        started = time.perf_counter()
        for _ in range(gets):
            client.get("BC4:HIST:Value")
        figures["collector get ms"] = (time.perf_counter() - started) / gets * 1e3
        figures["resident bytes per sample, Value watched"] = (
            proc.memory_info().rss - rss_empty
        ) / samples
    with ServerProcess(array_server, network, [samples]), Client(network) as client:
        client.get(f"BENCH:A{samples}")
        started = time.perf_counter()
        for _ in range(gets):
            client.get(f"BENCH:A{samples}")
        figures["raw p4p get ms"] = (time.perf_counter() - started) / gets * 1e3
    figures["ratio collector get / raw p4p get"] = (
        figures["collector get ms"] / figures["raw p4p get ms"]
    )
    return figures


def main() -> None:
    """Run every measurement and print the figures."""
    parser = BenchParser(__doc__)
    parser.add_argument(
        "--updates", type=int, default=200_000, quick=20_000, help="flat-out updates"
    )
    parser.add_argument("--channels", type=int, default=1000, quick=100)
    parser.add_argument(
        "--seconds", type=float, default=20.0, quick=1.0, help="many-channel duration"
    )
    parser.add_argument(
        "--samples", type=int, default=1_000_000, quick=100_000, help="history size"
    )
    args = parser.parse_args()
    network = Network.loopback()
    with TemporaryDirectory() as tmp:
        data = Path(tmp)
        flat = interleaved(
            args.runs,
            ours=lambda i: collector_flat_out(network, args.updates, data / f"flat{i}"),
            raw=lambda _: raw_flat_out(network, args.updates),
        )
        raw, ours = flat["raw"], flat["ours"]
        report("raw p4p monitor, source flat out", raw)
        ratio = "ratio recorded per s vs raw p4p received per s"
        report(
            "collector, source flat out",
            {**ours, ratio: ours["inputs recorded per s"] / raw["received per s"]},
            {ratio: 0.9, "<= inputs lost": 0},
        )
        if not QUICK:  # (a memory figure without a target: make bench measures it)
            report("monitor queue memory", queue_memory(network, QUEUE))
        many = interleaved(
            args.runs,
            ours=lambda i: many_channels(network, args.channels, args.seconds, data / f"m{i}"),
            raw=lambda _: raw_many_channels(network, args.channels, args.seconds),
        )
        report(f"raw p4p monitors, {args.channels} channels at 10 Hz", many["raw"])
        report(
            f"collector, {args.channels} channels at 10 Hz",
            {
                **many["ours"],
                "ratio CPU vs raw p4p monitors": many["ours"]["CPU share of one core"]
                / many["raw"]["CPU share of one core"],
            },
            {"<= missing": 0},
        )
        hist = gathered(
            history_get(network, args.samples, data / f"hist{i}") for i in range(args.runs)
        )
        report("history get and memory", hist, {"<= ratio collector get / raw p4p get": 1.3})


if __name__ == "__main__":
    main()
