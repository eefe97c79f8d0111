"""Image statistics at rising frame rates: our device vs raw p4p vs PvaPy, 0 missed frames.

One p4p source (``sim.pva_source --image 128x128``: uint8 NTNDArray frames numbered by
``uniqueId``) serves every consumer in turn; at each rate, each consumer:

1. raw p4p: a plain ``p4p.client.thread`` monitor whose callback runs the same numpy
   statistics (``Stats.process``) in one Python process: the limit we measure against;
2. ours: a processing device (own process) running ``stats`` on the frames;
3. PvaPy: ``pvapy-hpc-consumer`` with its default ``AdImageProcessor`` (receives and
   counts frames, computes nothing);
4. ours with a client monitoring the ``mean`` output losslessly (in this process), and
   two devices splitting the stream with ``distribute`` (processed = their Counts).

A burst of ``rate x seconds`` frames is posted only after the consumer is connected
and has taken the current frame, so a late start never counts as missed; missed =
posted - processed. Three repeats, median; the ladder goes on until every consumer
misses frames. Needs ``requirements/bench.txt`` (pvapy).
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from p4p.client.thread import Context

from _common import BenchParser, Between, Network, report
from epics_collector.process import DeviceProcess, ManagedProcess, wait_until
from epics_collector.processing import Input
from epics_collector.processing.processors._stats import Stats, StatsParams
from epics_collector.pva import Client
from epics_collector.sim import PvaSource

SOURCE = "BIMG"
CHANNEL = SOURCE + "0000"
DEPTH = 64  # queue of the raw consumer: the processing device's input depth


def burst(client: Client, rate: float, frames: int) -> float:
    """Post ``frames`` at ``rate``; return the rate the source achieved."""
    client.put(SOURCE + ":Rate", rate)
    client.put(SOURCE + ":Count", frames)
    started = time.monotonic()
    client.put(SOURCE + ":Go", 1)
    time.sleep(frames / rate * 0.9)
    if not wait_until(lambda: client.get(SOURCE + ":Posted") == frames, 60, 0.01):
        raise RuntimeError("the source did not post its burst")
    return frames / (time.monotonic() - started)


def settle(counter: Callable[[], int], target: int, quiet: float = 1.0) -> int:
    """Wait until ``counter()`` reaches ``target`` or stops moving for ``quiet`` s."""
    last, since = counter(), time.monotonic()
    while last < target and time.monotonic() - since < quiet:
        time.sleep(0.05)
        now = counter()
        if now != last:
            last, since = now, time.monotonic()
    return last


class RawConsumer(AbstractContextManager["RawConsumer"]):
    """p4p monitor + the same numpy statistics in its callback (this process)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.processed = 0
        self._lock = threading.Lock()
        self._stats = Stats(StatsParams())
        self._stats.setup()

    def _on_frame(self, frame: Any) -> None:
        self._stats.process({"img": Input(np.asarray(frame), 0.0)})
        with self._lock:
            self.processed += 1

    def __enter__(self) -> RawConsumer:
        self._ctx = Context("pva", conf=self.network.client_conf(), useenv=False)
        request = f"record[queueSize={DEPTH}]field()"
        self._sub = self._ctx.monitor(CHANNEL, self._on_frame, request=request)
        if not wait_until(lambda: self.processed >= 1, 10):
            raise RuntimeError("raw consumer never got a frame")
        return self

    def count(self) -> int:
        with self._lock:
            return self.processed

    def __exit__(self, *exc: object) -> None:
        self._sub.close()
        self._ctx.close()


class DeviceConsumer(AbstractContextManager["DeviceConsumer"]):
    """Our processing device running ``stats`` (own process).

    Processed = the device's ``Count`` (runs that produced outputs). With ``watch``, a
    client also monitors the ``mean`` output losslessly (in this process) and
    processed = updates that client received, so a frame counts only once its result
    reached a client (and the client's CPU is taken from the same two cores).
    """

    def __init__(self, network: Network, client: Client, prefix: str, watch: bool) -> None:
        config = {"inputs": {"img": CHANNEL}, "processor": {"name": "stats"}}
        self.device = DeviceProcess("processing", prefix, config, env=network.environ())
        self.network, self.client, self.prefix, self.watch = network, client, prefix, watch
        self.received = 0
        self._lock = threading.Lock()

    def _on_output(self, value: Any) -> None:
        with self._lock:
            self.received += 1

    def __enter__(self) -> DeviceConsumer:
        self.device.start()
        if self.watch:
            self._ctx = Context("pva", conf=self.network.client_conf(), useenv=False, nt=False)
            request = "record[queueSize=100000]field(value,timeStamp)"
            self._sub = self._ctx.monitor(self.prefix + "mean", self._on_output, request=request)
        if not wait_until(lambda: self.count() >= 1, 10):
            raise RuntimeError("device never produced an output")
        return self

    def count(self) -> int:
        if not self.watch:
            return int(self.client.get(self.prefix + "Count"))
        with self._lock:
            return self.received

    def __exit__(self, *exc: object) -> None:
        if self.watch:
            self._sub.close()
            self._ctx.close()
        self.device.stop()


class SplitConsumer(AbstractContextManager["SplitConsumer"]):
    """N processing devices sharing the stream (``distribute``); processed = their Counts."""

    def __init__(self, network: Network, client: Client, prefix: str, count: int) -> None:
        self.client = client
        self.prefixes = [f"{prefix}{i}:" for i in range(count)]
        self.devices = [
            DeviceProcess(
                "processing",
                device,
                {
                    "inputs": {"img": CHANNEL},
                    "processor": {"name": "stats"},
                    "distribute": {"index": i, "count": count},
                },
                env=network.environ(),
            )
            for i, device in enumerate(self.prefixes)
        ]

    def __enter__(self) -> SplitConsumer:
        for device in self.devices:
            device.start()
        if not wait_until(lambda: self.count() >= 1, 10):  # frame 0 is device 0's
            raise RuntimeError("the devices never processed a frame")
        return self

    def count(self) -> int:
        return sum(int(self.client.get(p + "Count")) for p in self.prefixes)

    def __exit__(self, *exc: object) -> None:
        for device in self.devices:
            device.stop()


class PvapyConsumer(AbstractContextManager["PvapyConsumer"]):
    """PvaPy's hpc consumer with its default processor (own process)."""

    def __init__(self, network: Network, seconds: float) -> None:
        args = ["-ic", CHANNEL, "-pc", "pvapy.hpc.adImageProcessor.AdImageProcessor"]
        args += ["-rt", str(seconds + 40), "-rp", "0.5", "-dc"]
        self.process = ManagedProcess("pvapy.cli.hpcConsumer", args, env=network.environ())

    def _last(self, field: str) -> int:
        found = re.findall(rf"'{field}': (\d+)", self.process.output())
        return int(found[-1]) if found else 0

    def _processed(self) -> int:
        return self._last("nProcessed")

    def __enter__(self) -> PvapyConsumer:
        self.process.start()
        if not wait_until(lambda: self._last("nReceived") >= 1, 20):
            self.process.stop()
            raise RuntimeError(f"PvaPy consumer never reported:\n{self.process.output()[-2000:]}")
        return self

    def count(self) -> int:
        return self._processed()

    def __exit__(self, *exc: object) -> None:
        self.process.stop()


def one_run(consumer: Any, client: Client, rate: float, seconds: float) -> tuple[int, int, float]:
    """(processed, missed, achieved source rate) of one burst into a ready consumer."""
    frames = int(rate * seconds)
    with consumer:
        base = consumer.count()
        achieved = burst(client, rate, frames)
        processed = settle(lambda: consumer.count() - base, frames)
    return processed, frames - processed, achieved


def ratio(ours: float, baseline: float, name: str, rates: list[float]) -> float:
    """``ours / baseline``, within what their rungs allow (:class:`Between`).

    Each highest rate is the rung passed: the true one lies below the next rung (or is
    the top one). NaN (not measured, said) when the baseline missed every rung.
    """
    if not baseline:
        print(f"{name} missed frames at the lowest rung: no ratio against it (NaN)")
        return float("nan")

    def above(rate: float) -> float:
        return min((r for r in rates if r > rate), default=rate)

    return Between(ours / baseline, ours / above(baseline), above(ours) / baseline)


def main() -> None:
    """Climb the ladder for every consumer and print the figures."""
    parser = BenchParser(__doc__)
    parser.add_argument(
        "--seconds", type=float, default=2.0, quick=0.5, help="burst length per rate"
    )
    parser.add_argument("--repeats", type=int, default=3, quick=1, help="runs per rung")
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[250, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000],
        quick=[2000],
    )
    parser.add_argument("--no-pvapy", action="store_true", help="skip PvaPy (not installed)")
    args = parser.parse_args()
    network = Network.loopback()
    makers: dict[str, Callable[[Client, int], Any]] = {
        "raw p4p + stats": lambda client, i: RawConsumer(network),
        "ours (stats device)": lambda client, i: DeviceConsumer(
            network, client, f"BPV{i}:", watch=False
        ),
        "ours, mean monitored": lambda client, i: DeviceConsumer(
            network, client, f"BPV{i}:", watch=True
        ),
        "ours, 2 devices (distribute)": lambda client, i: SplitConsumer(
            network, client, f"BPS{i}", 2
        ),
    }
    if args.quick:  # the consumers with a target only
        del makers["ours, mean monitored"], makers["ours, 2 devices (distribute)"]
    if not args.no_pvapy:
        makers["pvapy hpc consumer"] = lambda client, i: PvapyConsumer(network, args.seconds)
    highest = dict.fromkeys(makers, 0.0)
    figures: dict[str, float] = {}
    runs = 0
    with (
        PvaSource(SOURCE, network.environ(), rate=1000, image=(128, 128)),
        Client(network, timeout=10) as client,
    ):
        climbing = set(makers)
        for rate in args.rates:
            for who in list(climbing):
                results = []
                for _ in range(args.repeats):
                    runs += 1
                    results.append(one_run(makers[who](client, runs), client, rate, args.seconds))
                processed = statistics.median(r[0] for r in results)
                missed = statistics.median(r[1] for r in results)
                figures[f"{who} at {rate:g} fps: processed per s"] = processed / args.seconds
                figures[f"{who} at {rate:g} fps: missed (median)"] = missed
                figures[f"source at {rate:g} fps: achieved fps"] = statistics.median(
                    r[2] for r in results
                )
                if missed == 0:
                    highest[who] = rate
                else:
                    climbing.discard(who)  # missed at this rate: the next ones are higher
            if not climbing:
                break
    for who, rate in highest.items():
        figures[f"{who}: highest fps with 0 missed"] = rate
    ours, raw = highest["ours (stats device)"], highest["raw p4p + stats"]
    if "ours, 2 devices (distribute)" in highest:
        split = highest["ours, 2 devices (distribute)"]
        figures["ratio 2 devices / 1 device"] = ratio(
            split, ours, "ours (stats device)", args.rates
        )
    targets = {"ratio ours / raw p4p + stats": 0.9}
    figures["ratio ours / raw p4p + stats"] = ratio(ours, raw, "raw p4p + stats", args.rates)
    if "pvapy hpc consumer" in highest:
        pvapy = highest["pvapy hpc consumer"]
        figures["ratio ours / pvapy"] = ratio(ours, pvapy, "pvapy hpc consumer", args.rates)
        targets["ratio ours / pvapy"] = 1.0
    report("image stats 128x128 uint8: highest rate with 0 missed", figures, targets)


if __name__ == "__main__":
    main()
