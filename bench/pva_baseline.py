"""The raw p4p ceiling on this machine, and what our device core costs on top of it.

1. Scalars: a server posts a counter as fast as it can for a few seconds; one client
   monitors with ``record[queueSize=N]`` and counts updates received and lost (gaps).
   Done for a device attribute served by our core and for a raw p4p SharedPV of the
   same type (NTScalar with display and control) posting the same Value (value and
   timeStamp, as every EPICS server stamps its updates), then the value alone;
   interleaved, ``--runs`` rounds, the ratio is the rounds' median.
2. Arrays: gets per second and MB/s of 1-D arrays of 1e3 and 1e6 doubles.

Every later benchmark compares its figures with these, measured in the same run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
from p4p.client.thread import Context
from p4p.nt import NTScalar

from _common import (
    QUICK,
    BenchParser,
    Figure,
    Network,
    ServerProcess,
    interleaved,
    report,
    wait_quiet,
)
from epics_collector.pva import Client

QUEUE = 100_000


def raw_scalar_server(
    network, ready, go, stop, result, name: str, seconds: float, stamped: bool = True
) -> None:
    """Post a counter through a plain p4p SharedPV as fast as possible.

    ``stamped``: with its timeStamp (what our core posts); else the value alone.
    """
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    # the type our core serves an Int as: NTScalar with display and control
    pv = SharedPV(nt=NTScalar("l", display=True, control=True), initial=0)
    provider = StaticProvider("bench")
    provider.add(name, pv)
    now = time.time
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        ready.set()
        go.wait()
        posted, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            posted += 1
            if stamped:
                pv.post(posted, timestamp=now())
            else:
                pv.post(posted)
        result["posted"] = posted
        stop.wait()


def bare_scalar_server(network, ready, go, stop, result, name: str, seconds: float) -> None:
    """:func:`raw_scalar_server` posting the value alone (no timeStamp)."""
    raw_scalar_server(network, ready, go, stop, result, name, seconds, stamped=False)


def device_scalar_server(network, ready, go, stop, result, name: str, seconds: float) -> None:
    """Post a counter through a device attribute served by our core."""
    from epics_collector.core import AttrR, Device, DeviceConfig, Int
    from epics_collector.pva import DeviceServer

    class Bench(Device[DeviceConfig]):
        value = AttrR(Int(), description="counter")

    async def main() -> None:
        device = Bench({})
        async with DeviceServer(device, name.removesuffix("Value"), network):
            ready.set()
            await asyncio.to_thread(go.wait)
            posted, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                posted += 1
                device.value.set(posted)
            result["posted"] = posted
            await asyncio.to_thread(stop.wait)

    asyncio.run(main())


def array_server(network, ready, go, stop, result, sizes: list[int]) -> None:
    """Serve constant double arrays ``BENCH:A<size>``."""
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    provider = StaticProvider("bench")
    pvs = []
    for size in sizes:
        pvs.append(SharedPV(nt=NTScalar("ad"), initial=np.random.default_rng().random(size)))
        provider.add(f"BENCH:A{size}", pvs[-1])
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        ready.set()
        stop.wait()


def measure_scalar_monitor(network: Network, server, seconds: float) -> dict[str, float]:
    """Updates/s received and updates lost by one queued monitor."""
    name = "BENCH:Value"
    received, last, last_time = [0], [0], [0.0]
    lock = threading.Lock()

    def on_update(value: Any) -> None:
        with lock:
            received[0] += 1
            last[0] = int(value)
            last_time[0] = time.monotonic()

    with (
        ServerProcess(server, network, name, seconds) as srv,
        Context("pva", conf=network.client_conf(), useenv=False) as ctx,
    ):
        sub = ctx.monitor(name, on_update, request=f"record[queueSize={QUEUE}]field()")
        wait_quiet(lambda: received[0], quiet=0.3)  # initial value
        received[0] = 0
        srv.go.set()
        started = time.monotonic()
        time.sleep(seconds)
        wait_quiet(lambda: received[0])
        elapsed = last_time[0] - started
        sub.close()
        posted = srv.result["posted"]
    return {
        "posted per s": posted / seconds,
        "received per s": received[0] / elapsed,
        "received": received[0],
        "lost": posted - received[0],
        "last value seen == posted": float(last[0] == posted),
    }


def measure_array_gets(network: Network, sizes: list[int], seconds: float) -> dict[str, float]:
    """Gets/s and MB/s for arrays of each size."""
    figures: dict[str, float] = {}
    with (
        ServerProcess(array_server, network, sizes),
        Client(network) as ctx,
    ):
        for size in sizes:
            name = f"BENCH:A{size}"
            ctx.get(name)
            gets, end = 0, time.monotonic() + seconds
            started = time.monotonic()
            while time.monotonic() < end:
                assert len(ctx.get(name)) == size
                gets += 1
            rate = gets / (time.monotonic() - started)
            figures[f"{size:g} doubles: gets per s"] = rate
            figures[f"{size:g} doubles: MB per s"] = rate * size * 8 / 1e6
    return figures


def main() -> None:
    """Run every measurement and print the figures."""
    parser = BenchParser(__doc__, runs=7)  # cheap, and the noisiest ratio of all
    parser.add_argument("--seconds", type=float, default=3.0, quick=0.5, help="per measurement")
    args = parser.parse_args()
    network = Network.loopback()
    sides = {
        "ours": lambda _: measure_scalar_monitor(network, device_scalar_server, args.seconds),
        "raw": lambda _: measure_scalar_monitor(network, raw_scalar_server, args.seconds),
        "bare": lambda _: measure_scalar_monitor(network, bare_scalar_server, args.seconds),
    }
    if QUICK:  # (the value alone has no target: make bench measures it)
        del sides["bare"]
    runs = interleaved(args.runs, **sides)
    raw, ours = runs["raw"], runs["ours"]
    report("raw p4p: scalar monitor, server posting flat out", dict(raw))
    figures: dict[str, Figure] = dict(ours)
    figures["ratio received per s vs raw p4p"] = ours["received per s"] / raw["received per s"]
    figures["ratio posted per s vs raw p4p"] = ours["posted per s"] / raw["posted per s"]
    if "bare" in runs:
        bare = runs["bare"]
        report("raw p4p: scalar monitor, value alone (no timeStamp), flat out", dict(bare))
        figures["ratio posted per s vs raw p4p, value alone"] = (
            ours["posted per s"] / bare["posted per s"]
        )
    report(
        "device core: scalar attribute, posting flat out",
        figures,
        {"ratio posted per s vs raw p4p": 0.9, "<= lost": 0},
    )
    report("raw p4p: array gets", measure_array_gets(network, [1000, 1_000_000], args.seconds))


if __name__ == "__main__":
    main()
