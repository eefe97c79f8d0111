"""Side by side with PvaPy: image statistics at rising frame rates, 0 missed frames.

PvaPy's `pvapy-ad-sim-server` streams 128 x 128 uint8 NTNDArray frames; at each rate
1. PvaPy's `pvapy-hpc-consumer` with its `AdImageProcessor` reports processed and missed;
2. our processing device runs `stats` on the same stream (a fresh server and device per
   rate); missed = frames published - runs.
Prints the highest rate each keeps with 0 missed. Needs `requirements/bench.txt` (pvapy).
"""

from __future__ import annotations

import argparse
import re
import time

from _common import Network, report
from epics_collector.process import DeviceProcess, ManagedProcess, wait_until
from epics_collector.pva import Client

START_DELAY = 4.0  # seconds the sim server waits before publishing (consumers connect)


def sim_server(network: Network, channel: str, rate: float, seconds: float) -> ManagedProcess:
    """PvaPy's area-detector simulator on the loopback network."""
    args = ["-cn", channel, "-nx", "128", "-ny", "128", "-dt", "uint8", "-fps", str(rate)]
    args += ["-rt", str(seconds), "-nf", "100", "-std", str(START_DELAY), "-dc"]
    return ManagedProcess("pvapy.cli.adSimServer", args, env=network.environ()).start()


def published(server: ManagedProcess) -> int:
    """Frames the simulator says it published (after it stopped)."""
    server.popen.wait(60)
    match = re.search(r"Published frames:\s+(\d+)", server.output())
    if match is None:
        raise RuntimeError(f"no frame count from the simulator:\n{server.output()[-2000:]}")
    return int(match.group(1))


def pvapy_run(network: Network, rate: float, seconds: float, index: int) -> tuple[int, int]:
    """(processed, missed) by PvaPy's consumer."""
    channel = f"PVAPY{index}:IMG"
    server = sim_server(network, channel, rate, seconds)
    args = ["-ic", channel, "-pc", "pvapy.hpc.adImageProcessor.AdImageProcessor"]
    args += ["-rt", str(seconds + START_DELAY + 2), "-rp", str(seconds + START_DELAY), "-dc"]
    consumer = ManagedProcess("pvapy.cli.hpcConsumer", args, env=network.environ()).start()
    try:
        consumer.popen.wait(seconds + START_DELAY + 30)
        sent = published(server)
    finally:
        consumer.stop()
        server.stop()
    processed = [int(n) for n in re.findall(r"'nProcessed': (\d+)", consumer.output())]
    missed = [int(n) for n in re.findall(r"'nMissed': (\d+)", consumer.output())]
    if not processed:
        raise RuntimeError(f"no report from the PvaPy consumer:\n{consumer.output()[-2000:]}")
    return processed[-1], max(missed[-1] if missed else 0, sent - processed[-1])


def ours_run(network: Network, rate: float, seconds: float, index: int) -> tuple[int, int]:
    """(processed, missed) by our processing device with stats."""
    channel = f"OURS{index}:IMG"
    prefix = f"BPV{index}:"
    server = sim_server(network, channel, rate, seconds)
    config = {"inputs": {"img": channel}, "processor": {"name": "stats"}}
    try:
        with (
            DeviceProcess("processing", prefix, config, env=network.environ()),
            Client(network) as client,
        ):
            base = client.get(prefix + "Count")
            sent = published(server)
            time.sleep(1.0)
            wait_until(lambda: client.get(prefix + "Count") - base >= sent, 5)
            processed = client.get(prefix + "Count") - base
    finally:
        server.stop()
    return processed, max(0, sent - processed)


def main() -> None:
    """Run the ladder for both and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per rate")
    parser.add_argument("--rates", type=float, nargs="+", default=[500, 1000, 2000, 4000])
    args = parser.parse_args()
    network = Network.loopback()
    figures: dict[str, float] = {
        "pvapy highest fps with 0 missed": 0,
        "ours highest fps with 0 missed": 0,
    }
    for index, rate in enumerate(args.rates):
        for who, run in (("pvapy", pvapy_run), ("ours", ours_run)):
            processed, missed = run(network, rate, args.seconds, index)
            figures[f"{who} at {rate:g} fps: processed"] = processed
            figures[f"{who} at {rate:g} fps: missed"] = missed
            if missed == 0:
                key = f"{who} highest fps with 0 missed"
                figures[key] = max(figures[key], rate)
    pvapy = figures["pvapy highest fps with 0 missed"]
    figures["ratio ours / pvapy"] = (
        figures["ours highest fps with 0 missed"] / pvapy if pvapy else 0.0
    )
    report("image stats, 128x128 uint8, PvaPy vs ours", figures)


if __name__ == "__main__":
    main()
