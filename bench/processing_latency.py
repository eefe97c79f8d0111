"""Processing latency and sustained rates, against raw p4p measured in the same run.

1. Latency: a p4p source posts at 1 kHz (each value stamped when posted); a raw p4p
   monitor's receive delay vs the delay to a processing device's `calc` output (which
   carries its input's timestamp): p50 and p99.
2. Highest input rate a `calc` device keeps with 0 skipped (rates doubled until skips).
3. The same for `roi` on 512 x 512 images.
PvaPy's `pvapy-hpc-consumer` comparison is not run here (see the closing note).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from p4p.client.thread import Context

from _common import QUICK, BenchParser, Network, gathered, report
from epics_collector.process import DeviceProcess, wait_until
from epics_collector.pva import Client
from epics_collector.sim import PvaSource

REQUEST = "record[queueSize=100000]field()"


def start_source(network: Network, prefix: str, length: int = 0) -> PvaSource:
    """A pva_source whose Rate and Count are set per run (``with`` starts and stops it)."""
    return PvaSource(prefix, network.environ(), rate=1000, length=length)


def burst(client: Client, prefix: str, rate: float, count: int) -> None:
    """Post ``count`` updates at ``rate`` and wait until they are posted."""
    client.put(prefix + ":Rate", rate)
    client.put(prefix + ":Count", count)
    client.put(prefix + ":Go", 1)
    time.sleep(count / rate)
    wait_until(lambda: client.get(prefix + ":Posted") == count, 30)


def delays(network: Network, name: str, run: Any) -> np.ndarray:
    """Receive time minus value timestamp of every update of ``name`` during ``run()``."""
    seen: list[float] = []
    lock = threading.Lock()

    def on_update(value: Any) -> None:
        now = time.time()
        with lock:
            seen.append(now - value.timestamp)

    with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
        sub = ctx.monitor(name, on_update, request=REQUEST)
        time.sleep(0.2 if QUICK else 0.5)  # the initial update
        with lock:
            seen.clear()
        run()
        time.sleep(0.2 if QUICK else 0.5)  # the last updates in flight
        sub.close()
    return np.array(seen) * 1e3


def latency(network: Network, client: Client, count: int) -> dict[str, float]:
    """p50/p99 of raw p4p vs calc output at 1 kHz."""
    raw = delays(network, "LAT0000", lambda: burst(client, "LAT", 1000, count))
    config = {
        "inputs": {"a": "LAT0000"},
        "processor": {"name": "calc", "params": {"expression": "a * 2"}},
    }
    with DeviceProcess("processing", "BP1:", config, env=network.environ()):
        wait_until(lambda: client.get("BP1:Count") > 0, 10)
        ours = delays(network, "BP1:result", lambda: burst(client, "LAT", 1000, count))
        errors = client.get("BP1:Errors")
    return {
        "raw p4p p50 ms": float(np.percentile(raw, 50)),
        "raw p4p p99 ms": float(np.percentile(raw, 99)),
        "calc output p50 ms": float(np.percentile(ours, 50)),
        "calc output p99 ms": float(np.percentile(ours, 99)),
        "ratio p99 vs raw": float(np.percentile(ours, 99) / np.percentile(raw, 99)),
        "outputs": len(ours),
        "errors": errors,
    }


def highest_rate(
    network: Network,
    client: Client,
    prefix: str,
    config: dict[str, Any],
    rates: list[float],
    seconds: float,
    device: str,
) -> dict[str, float]:
    """Double the rate until the device skips; the last rate without skips."""
    kept = 0.0
    with DeviceProcess("processing", device, config, env=network.environ()):
        wait_until(lambda: client.get(device + "Count") > 0, 10)
        for rate in rates:
            skipped = client.get(device + "Skipped")
            count = client.get(device + "Count")
            burst(client, prefix, rate, int(rate * seconds))
            time.sleep(0.5 if QUICK else 1.5)  # the last runs finish
            if client.get(device + "Skipped") != skipped or client.get(
                device + "Count"
            ) - count < int(rate * seconds):
                break
            kept = rate
        duration = client.get(device + "DurationMax")
    return {"highest rate with 0 skipped per s": kept, "longest run ms": duration * 1e3}


def main() -> None:
    """Run every measurement and print the figures."""
    parser = BenchParser(__doc__)
    parser.add_argument("--count", type=int, default=5000, quick=500, help="for latency")
    parser.add_argument("--seconds", type=float, default=2.0, quick=0.5, help="per rate step")
    args = parser.parse_args()
    network = Network.loopback()
    with Client(network, timeout=10) as client:
        with start_source(network, "LAT"):
            report(
                "latency at 1 kHz",
                gathered(latency(network, client, args.count) for _ in range(args.runs)),
                {"<= calc output p99 ms": 5.0},
                {"calc output p99 ms": "<= ratio p99 vs raw"},
            )
            calc = {
                "inputs": {"a": "LAT0000"},
                "processor": {"name": "calc", "params": {"expression": "a * 2"}},
            }
            step = 3 if args.quick else 1  # quick: every third rate of the ladder
            rates = [125.0 * 2**i for i in range(9)][::step]
            report(
                "calc: sustained input rate",
                highest_rate(network, client, "LAT", calc, rates, args.seconds, "BP2:"),
            )
        if QUICK:  # (a ladder without a target: make bench climbs it)
            print("\n(roi 512x512: not run under --quick)")
            return
        with start_source(network, "IMG", length=512 * 512):
            roi = {
                "inputs": {"img": "IMG0000"},
                "processor": {"name": "roi", "params": {"shape": [512, 512], "background": -1}},
            }
            rates = [25.0 * 2**i for i in range(7)][::step]
            report(
                "roi 512x512: sustained frame rate",
                highest_rate(network, client, "IMG", roi, rates, args.seconds, "BP3:"),
            )


if __name__ == "__main__":
    main()
