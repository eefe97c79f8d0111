"""Many channels: start time, memory, CPU and updates/s of a collector of 10k-100k PVs.

Each size N: four p4p counter servers (``sim.pva_source``) serve N/4 channels each; a
collector (own process) records all N. Measured: seconds to ready and to every channel
connected, resident memory idle (no row written yet) and per channel, CPU idle, then a
recording at a fixed offered load (``--load`` updates/s over all channels): updates/s
recorded, missing and the CPU share; then the seconds a NeXus export of it takes. The
reference, in the same run: a plain p4p client process with N raw monitors of the same
servers (same request), its memory per channel. The idle collector's resident memory
is broken down into an empty collector's (one channel: the interpreter, the libraries),
pvxs and p4p's per monitored channel (the raw client's) and ours per channel (the rest:
channel objects, PVs served, the Channels table); an idle ring holds no rows (rings grow
from none as rows arrive).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

import psutil
from p4p.client import raw
from p4p.client.thread import Context

from _common import QUICK, BenchParser, Network, report, wait_quiet
from epics_collector.process import DeviceProcess, wait_until
from epics_collector.pva import Client
from epics_collector.sim import PvaSource

SERVERS = 4
QUEUE = 100_000  # the collector's default queue for number channels
CAPACITY = 1000
IDLE_MB = {10_000: 250.0}  # resident ceilings of idle collectors, by channels
SETTLE = 0.5 if QUICK else 2.0  # seconds for the initial updates to land


def sources(network: Network, channels: int, rate: float) -> tuple[list[PvaSource], list[str]]:
    """SERVERS counter servers with ``channels`` in all, and every channel's name."""
    per = channels // SERVERS
    started = [
        PvaSource(f"MC{k}:", network.environ(), channels=per, rate=rate, timeout=120).start()
        for k in range(SERVERS)
    ]
    return started, [name for s in started for name in s.names(per)]


def _raw_monitors(network: Network, names: list[str], out: Any) -> None:
    """In a fresh process: RSS growth for one raw monitor per name (initial updates in)."""
    ctx = Context("pva", conf=network.client_conf(), useenv=False, nt=False)
    ctx.get(names[0])
    before = psutil.Process().memory_info().rss
    got = [0]
    request = f"record[queueSize={QUEUE}]field()"

    def wake() -> None:
        got[0] += 1

    subs = [raw.Context.monitor(ctx, name, wake, request) for name in names]
    wait_until(lambda: got[0] >= len(names), 300)
    time.sleep(1.0)  # the last initial updates land in the queues
    out.put((psutil.Process().memory_info().rss - before) / len(names))
    for sub in subs:
        sub.close()
    ctx.close()


def raw_bytes_per_channel(network: Network, names: list[str]) -> float:
    """Resident bytes a plain p4p client spends per monitored channel."""
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    process = spawn.Process(target=_raw_monitors, args=(network, names, out))
    process.start()
    value = float(out.get(timeout=600))
    process.join(30)
    return value


def _collector_rss(network: Network, config: dict[str, Any], data: Path) -> float:
    with DeviceProcess("collector", "MCB:", config, env=network.environ(), data_dir=data) as dev:
        time.sleep(SETTLE)  # idle: nothing to wait for
        return float(psutil.Process(dev.process.pid).memory_info().rss)


def collector(
    network: Network, names: list[str], load: float, seconds: float, data: Path
) -> dict[str, float]:
    """Start a collector of ``names``, then record ``load`` updates/s for ``seconds``."""
    channels = len(names)
    config = {"channels": names, "capacity": CAPACITY, "connect_timeout": 120}
    empty = _collector_rss(network, {"channels": ["NOPE:0"], "capacity": CAPACITY}, data / "e")
    started = time.monotonic()
    with (
        DeviceProcess(
            "collector", "MC:", config, env=network.environ(), data_dir=data, timeout=600
        ) as device,
        Client(network, timeout=120) as client,
    ):
        ready = time.monotonic() - started
        wait_until(lambda: bool(all(client.get("MC:Channels").value.connected)), 600, 0.5)
        connected = time.monotonic() - started
        process = psutil.Process(device.process.pid)
        time.sleep(SETTLE)  # settle: the initial updates are in
        rss = process.memory_info().rss
        cpu0, t0 = process.cpu_times(), time.monotonic()
        time.sleep(1.0 if QUICK else 5.0)  # an idle stretch to measure
        cpu1, t1 = process.cpu_times(), time.monotonic()
        idle_cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
        client.put("MC:Start", 1)
        wait_until(lambda: client.get("MC:Count") >= channels, 60, 0.2)  # initial values
        wait_quiet(lambda: client.get("MC:Count"), quiet=1.0, timeout=60)
        base = client.get("MC:Count")
        rate = load / channels
        count = max(1, round(rate * seconds))  # posts per channel
        for k in range(SERVERS):
            client.put(f"MC{k}::Rate", rate)
            client.put(f"MC{k}::Count", count)
        cpu0, t0 = process.cpu_times(), time.monotonic()
        for k in range(SERVERS):
            client.put(f"MC{k}::Go", 1)
        expected = count * (channels // SERVERS) * SERVERS
        wait_until(lambda: client.get("MC:Count") - base >= expected, seconds + 120, 0.1)
        cpu1, t1 = process.cpu_times(), time.monotonic()
        recorded = client.get("MC:Count") - base
        dropped = client.get("MC:Dropped")
        rss_recording = process.memory_info().rss
        client.put("MC:Stop", 1)
        exported = time.monotonic()
        client.context.put("MC:Export", "all", timeout=900)  # answered once written
        export_seconds = time.monotonic() - exported
    return {
        "channels": channels,
        "seconds to ready": ready,
        "seconds to all connected": connected,
        "resident MB idle": rss / 1e6,
        "empty collector MB": empty / 1e6,
        "KB per channel idle": (rss - empty) / channels / 1e3,
        "CPU share idle": idle_cpu,
        "updates per s recorded": recorded / (t1 - t0),
        "missing": expected - recorded,
        "dropped": dropped,
        "CPU share recording": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0),
        "resident MB after recording": rss_recording / 1e6,
        "seconds to export NeXus": export_seconds,
    }


class _Reader:
    """Reads scalars as plain numbers (a raw p4p context: ``value`` of the NTScalar)."""

    def __init__(self, network: Network) -> None:
        self.ctx = Context("pva", conf=network.client_conf(), useenv=False, nt=False)

    def __call__(self, name: str) -> int:
        return int(cast(Any, self.ctx.get(name, timeout=60))["value"])


def _start_connected(client: Client, read: _Reader, prefix: str, channels: int) -> None:
    """Wait until every channel is connected, start, wait for the initial values."""
    wait_until(lambda: bool(all(client.get(f"{prefix}Channels").value.connected)), 60)
    client.put(f"{prefix}Start", 1)
    wait_until(lambda: read(f"{prefix}Count") >= channels, 60)


def _recorded_rate(
    network: Network, parts: list[list[str]], servers: list[PvaSource], data: Path
) -> dict[str, float]:
    """Collectors (one per part) record one flat-out Go of every server: updates/s."""
    prefixes = [f"SP{i}:" for i in range(len(parts))]
    configs = [{"channels": part, "capacity": 1000, "connect_timeout": 60} for part in parts]
    devices = [
        DeviceProcess("collector", p, c, env=network.environ(), data_dir=data / p[:-1])
        for p, c in zip(prefixes, configs, strict=True)
    ]
    read = _Reader(network)
    try:
        for device in devices:
            device.start()
        with Client(network, timeout=60) as client:
            for p, part in zip(prefixes, parts, strict=True):
                _start_connected(client, read, p, len(part))
            total = lambda: sum(read(f"{p}Count") for p in prefixes)  # noqa: E731
            wait_quiet(total, quiet=1.0)
            base, posts = total(), read(f"{servers[0].prefix}:Count")
            expected = base + posts * sum(len(part) for part in parts)
            started = time.monotonic()
            for server in servers:
                client.put(f"{server.prefix}:Go", 1)
            wait_until(lambda: total() >= expected, 300, 0.05)
            seconds = time.monotonic() - started
            lost = sum(read(f"{p}Dropped") + read(f"{p}Overruns") for p in prefixes)
            return {"updates per s": (total() - base) / seconds, "lost": lost}
    finally:
        for device in devices:
            device.stop()
        read.ctx.close()


def split(network: Network, channels: int, posts: int, data: Path) -> dict[str, float]:
    """One collector of ``channels`` vs two of half each, sources posting flat out."""
    per = channels // SERVERS
    servers = [
        PvaSource(f"SPS{k}:", network.environ(), channels=per, rate=0, count=posts).start()
        for k in range(SERVERS)
    ]
    try:
        names = [name for s in servers for name in s.names(per)]
        one = _recorded_rate(network, [names], servers, data / "one")
        half = len(names) // 2
        two = _recorded_rate(network, [names[:half], names[half:]], servers, data / "two")
    finally:
        for server in servers:
            server.stop()
    return {
        "channels": channels,
        "updates": channels * posts,
        "one collector updates per s": one["updates per s"],
        "one collector lost": one["lost"],
        "two collectors updates per s": two["updates per s"],
        "two collectors lost": two["lost"],
        "ratio two collectors / one": two["updates per s"] / one["updates per s"],
        "cores": float(psutil.cpu_count() or 0),
    }


def main() -> None:
    """The scaling table."""
    parser = BenchParser(__doc__)
    parser.add_argument("--sizes", default="10000,50000,100000", quick="400")
    parser.add_argument(
        "--load", type=float, default=20_000, quick=5000, help="updates/s offered in all"
    )
    parser.add_argument("--seconds", type=float, default=10.0, quick=2.0, help="recording")
    parser.add_argument("--split-channels", type=int, default=2000, quick=200)
    parser.add_argument("--split-posts", type=int, default=100, quick=20, help="posts each")
    args = parser.parse_args()
    network = Network.loopback()
    table = []
    with TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            servers, names = sources(network, size, 1.0)
            try:
                raw_kb = raw_bytes_per_channel(network, names) / 1e3
                figures = collector(network, names, args.load, args.seconds, Path(tmp) / str(size))
            finally:
                for server in servers:
                    server.stop()
            figures["pvxs and p4p KB per channel (a raw p4p monitor)"] = raw_kb
            figures["ours KB per channel"] = figures["KB per channel idle"] - raw_kb
            print(
                f"{size} idle channels: {figures['resident MB idle']:.0f} MB = empty collector "
                f"{figures['empty collector MB']:.0f} MB + {size} x (pvxs and p4p "
                f"{raw_kb:.1f} KB + ours {figures['ours KB per channel']:.1f} KB)"
            )
            targets = {"<= ours KB per channel": 5.0, "<= missing": 0.0}
            if size in IDLE_MB:
                targets["<= resident MB idle"] = IDLE_MB[size]
            report(f"collector of {size} channels", figures, targets)
            table.append(figures)
    print(
        "\nchannels  ready s  connected s  RSS MB  KB/ch (p4p)  CPU idle  updates/s  CPU rec"
        "  export s"
    )
    for f in table:
        print(
            f"{f['channels']:>8.0f}  {f['seconds to ready']:>7.1f}  "
            f"{f['seconds to all connected']:>11.1f}  {f['resident MB idle']:>6.0f}  "
            f"{f['KB per channel idle']:>5.1f} "
            f"({f['pvxs and p4p KB per channel (a raw p4p monitor)']:.1f})  "
            f"{f['CPU share idle']:>8.2f}  {f['updates per s recorded']:>9.0f}  "
            f"{f['CPU share recording']:>7.2f}  {f['seconds to export NeXus']:>8.1f}"
        )
    print("JSON " + json.dumps({"benchmark": "many channels table", "rows": table}))
    if QUICK:  # (its processes' start-up is most of it: under 3 minutes for bench-quick)
        print("\n(one collector vs two: not run under --quick)")
        return
    with TemporaryDirectory() as tmp:
        report(
            "one collector vs two, sources flat out (workers: N is not implemented)",
            split(network, args.split_channels, args.split_posts, Path(tmp)),
            {"<= one collector lost": 0, "<= two collectors lost": 0},
        )


if __name__ == "__main__":
    main()
