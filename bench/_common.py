"""Helpers every benchmark shares: a loopback network, a server in a spawned process,
interleaved runs with their spread, the quick sizes, and output.

A ratio against raw p4p swings by 20-30% from one run to the next on a shared 2-core
machine, more than the margins it checks. So every ratio with a target is measured as
``--runs`` (default 3) interleaved rounds (ours, raw, ours, raw, ...) and reported as the
median of the rounds' ratios, with the lowest and highest (:class:`Runs`).
``bench/compare.py`` calls a figure moved only when it moved by more than that spread.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
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


#: ``make bench-quick``: every script at reduced size (a check before a commit, not a figure).
QUICK = "--quick" in sys.argv


class Runs(list[float]):
    """A figure measured in several interleaved runs: reported as its median and spread."""

    @property
    def median(self) -> float:
        return float(statistics.median(self))

    @property
    def quartiles(self) -> list[float]:
        """The first and third quartiles (four runs or more; else none)."""
        if len(self) < 4:
            return []
        q1, _, q3 = statistics.quantiles(self, n=4, method="inclusive")
        return [float(q1), float(q3)]

    def __truediv__(self, other: Runs) -> Runs:  # type: ignore[override]
        """The ratio run by run (round i of ours over round i of raw)."""
        return Runs(a / b if b else float("nan") for a, b in zip(self, other, strict=True))

    def __mul__(self, factor: float) -> Runs:  # type: ignore[override]
        return Runs(value * factor for value in self)


class Between(float):
    """A figure measured once that lies within a range: a ladder's rung.

    A highest rate with 0 missed is the rung passed; the true rate lies below the next
    rung. ``bench/compare.py`` calls it moved only beyond that range.
    """

    low: float
    high: float

    def __new__(cls, value: float, low: float, high: float) -> Between:
        figure = super().__new__(cls, value)
        figure.low, figure.high = min(low, value), max(high, value)
        return figure


Figure = float | Runs


class BenchParser(argparse.ArgumentParser):
    """The command line of a benchmark: its sizes (with ``quick=`` ones), ``--runs``."""

    def __init__(self, doc: str | None, runs: int = 3) -> None:
        super().__init__(description=(doc or "").splitlines()[0])
        super().add_argument(
            "--quick", action="store_true", help="reduced sizes, one run (make bench-quick)"
        )
        super().add_argument(
            "--runs", type=int, default=1 if QUICK else runs, help="interleaved runs per ratio"
        )

    def add_argument(self, *names: Any, quick: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """As argparse's; ``quick`` is the default under ``--quick``."""
        if QUICK and quick is not None:
            kwargs["default"] = quick
        return super().add_argument(*names, **kwargs)


def interleaved(
    runs: int, **sides: Callable[[int], dict[str, float]]
) -> dict[str, dict[str, Runs]]:
    """Run each side once per round, in turn (ours, raw, ours, raw, ...).

    Each side is called with the round's number and returns its figures; the answer
    holds, per side, each figure's values over the rounds.
    """
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for round_ in range(runs):
        for name, side in sides.items():
            results[name].append(side(round_))
    return {name: gathered(rounds) for name, rounds in results.items()}


def gathered(rounds: Iterable[dict[str, float]]) -> dict[str, Runs]:
    """Each figure's values over ``rounds`` (figure dicts of the same keys)."""
    out: dict[str, Runs] = {}
    for figures in rounds:
        for key, value in figures.items():
            out.setdefault(key, Runs()).append(float(value))
    return out


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def wait_quiet(
    counter: Callable[[], int], quiet: float | None = None, timeout: float = 30.0
) -> None:
    """Wait until ``counter()`` stops changing for ``quiet`` seconds (0.5; 0.25 quick)."""
    quiet = quiet if quiet is not None else 0.25 if QUICK else 0.5
    deadline = time.monotonic() + timeout
    last, since = counter(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = counter()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def report(
    name: str,
    figures: Mapping[str, Figure],
    targets: Mapping[str, float] | None = None,
    judges: Mapping[str, str] | None = None,
) -> None:
    """Print figures for humans and one JSON line for tools (``bench/summary.py``).

    A figure measured in several runs (:class:`Runs`) is printed and recorded as its
    median, with its lowest and highest value as the spread; a count that must be 0
    (a target ``<= 0``: lost, missing) as its worst round. ``targets`` maps figure
    names to the value they should reach (>=); a name that starts with ``<=`` is a
    ceiling instead. ``judges`` maps an absolute figure (us/row, ms) to its ratio
    against the raw reference of the same rounds (``<=`` when lower is better): what
    ``bench/compare.py`` asks before it calls a move of the figure a regression.
    """
    print(f"\n== {name}")
    figures = dict(figures)
    for target, limit in (targets or {}).items():  # "<= lost: 0" holds in every round
        key = target.removeprefix("<=").strip()
        value = figures.get(key)
        if target.startswith("<=") and limit == 0 and isinstance(value, Runs):
            figures[key] = float(max(value))
    line: dict[str, Any] = {"benchmark": name}
    spread: dict[str, list[float]] = {}
    for key, value in figures.items():
        if isinstance(value, Runs) and len(value) > 1:
            line[key] = value.median
            spread[key] = [min(value), max(value), len(value), *value.quartiles]
            print(
                f"  {key:<40} {value.median:>14,.3f}  [{min(value):,.3f} .. {max(value):,.3f}]"
                f" of {len(value)}"
            )
        elif isinstance(value, Between):
            line[key] = float(value)
            spread[key] = [value.low, value.high, 1]
            print(f"  {key:<40} {value:>14,.3f}  (within {value.low:,.3f} .. {value.high:,.3f})")
        else:
            line[key] = value = value.median if isinstance(value, Runs) else float(value)
            print(f"  {key:<40} {value:>14,.3f}")
    if spread:
        line["spread"] = spread
    if targets:
        line["targets"] = targets
    if judges:
        line["judges"] = judges
    print("JSON " + json.dumps(line))


def prewritten_history(data: Path, alias: str, samples: int, spacing: float = 1.0) -> None:
    """Write ``samples`` rows of channel ``alias`` into a collector's spill store."""
    store = SpillStore(data / "spill" / "history.sqlite")
    t = 1.7e9 + np.arange(samples, dtype=float) * spacing
    zeros = np.zeros(samples, np.int8)
    store.write([(alias, Columns(t, t * 2, zeros, zeros))])
    store.close()


__all__ = [
    "QUICK",
    "BenchParser",
    "Between",
    "Figure",
    "Network",
    "Runs",
    "ServerProcess",
    "gathered",
    "interleaved",
    "prewritten_history",
    "report",
    "timed",
    "wait_quiet",
]
