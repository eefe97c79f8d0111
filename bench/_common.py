"""Helpers every benchmark shares: a loopback network, a server in a spawned process, output."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.pva import Network
from epics_collector.storage import Columns, SpillStore

SPAWN = multiprocessing.get_context("spawn")


class ServerProcess:
    """Runs ``target(network, ready, stop, result, *args)`` in a spawned process.

    The target sets ``ready`` when it serves, runs until ``stop`` is set, and may put
    figures into the ``result`` dict.
    """

    def __init__(self, target: Callable[..., None], network: Network, *args: Any) -> None:
        self._manager = SPAWN.Manager()
        self.ready, self.go, self.stop = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
        self.result: dict[str, Any] = self._manager.dict()  # type: ignore[assignment]
        self.process = SPAWN.Process(
            target=target,
            args=(network, self.ready, self.go, self.stop, self.result, *args),
            daemon=True,
        )

    def __enter__(self) -> ServerProcess:
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("benchmark server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._manager.shutdown()


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def wait_quiet(counter: Callable[[], int], quiet: float = 0.5, timeout: float = 30.0) -> None:
    """Wait until ``counter()`` stops changing for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = counter(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = counter()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def report(name: str, figures: dict[str, float], targets: dict[str, float] | None = None) -> None:
    """Print figures for humans and one JSON line for tools (``bench/summary.py``).

    ``targets`` maps figure names to the value they should reach (>=); a name that
    starts with ``<=`` is a ceiling instead.
    """
    print(f"\n== {name}")
    for key, value in figures.items():
        print(f"  {key:<40} {value:>14,.3f}")
    line = {"benchmark": name, **figures}
    if targets:
        line["targets"] = targets  # type: ignore[assignment]
    print("JSON " + json.dumps(line))


def prewritten_history(data: Path, alias: str, samples: int, spacing: float = 1.0) -> None:
    """Write ``samples`` rows of channel ``alias`` into a collector's spill store."""
    store = SpillStore(data / "spill" / "history.sqlite")
    t = 1.7e9 + np.arange(samples, dtype=float) * spacing
    zeros = np.zeros(samples, np.int8)
    store.write([(alias, Columns(t, t * 2, zeros, zeros))])
    store.close()


__all__ = ["Network", "ServerProcess", "prewritten_history", "report", "timed", "wait_quiet"]
