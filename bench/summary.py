"""One table of every benchmark figure that has a target, and ``build/bench.json``.

Reads the ``JSON`` lines the benchmarks print (``make bench`` keeps them in
``build/bench.log``) and prints, per target: the figure, its value (the median of its
interleaved runs), its spread (lowest .. highest run), the target and whether it was
met. Ratios are computed by each benchmark against the reference it measured in the
same run. With ``--json PATH`` it also writes every figure (targets or not) for
``bench/compare.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One figure of one benchmark, as ``bench.json`` keeps it."""

    value: float  # the median of its runs (or its one value)
    low: float
    high: float
    runs: int
    target: str | None = None  # ">= 0.9", "<= 2": the direction that is better, and where
    met: bool | None = None
    judge: str | None = None  # ">= bench: ratio": the same-run ratio that tells code from machine
    q1: float | None = None  # the rounds' first and third quartiles (four rounds or more)
    q3: float | None = None

    @property
    def label(self) -> str:
        if self.runs < 2 and self.low == self.high:
            return "one run"
        if self.runs < 2:  # a ladder's rung: the true value lies within it
            return f"rung {self.low:,.3f} .. {self.high:,.3f}"
        return f"{self.low:,.3f} .. {self.high:,.3f}"


def figures(lines: list[str]) -> dict[str, Figure]:
    """Every figure of the ``JSON`` lines, keyed ``benchmark: figure``."""
    found: dict[str, Figure] = {}
    for line in lines:
        if not line.startswith("JSON "):
            continue
        data = json.loads(line[5:])
        spread = data.get("spread", {})
        targets = {
            name.removeprefix("<=").strip(): (name.startswith("<="), target)
            for name, target in data.get("targets", {}).items()
        }
        judges = {
            name: f"{'<=' if judge.startswith('<=') else '>='} {data['benchmark']}: "
            + judge.removeprefix("<=").strip()
            for name, judge in data.get("judges", {}).items()
        }
        for name, value in data.items():
            if name in _NOT_FIGURES or not isinstance(value, int | float):
                continue
            low, high, runs, *quartiles = spread.get(name, (value, value, 1))
            figure = Figure(float(value), float(low), float(high), int(runs))
            if quartiles:
                figure.q1, figure.q3 = float(quartiles[0]), float(quartiles[1])
            figure.judge = judges.get(name)
            if name in targets:
                ceiling, target = targets[name]
                figure.target = f"{'<=' if ceiling else '>='} {target:g}"
                if not math.isnan(value):  # NaN: not measured (a failed baseline), not met
                    figure.met = value <= target if ceiling else value >= target
            found[f"{data['benchmark']}: {name}"] = figure
    for name, (_, target) in _missing(lines).items():  # a target with no figure: NO
        found[name] = Figure(float("nan"), float("nan"), float("nan"), 0, target, False)
    return found


_NOT_FIGURES = ("benchmark", "spread", "targets", "judges")


def _missing(lines: list[str]) -> dict[str, tuple[bool, str]]:
    """Targets named by a benchmark that printed no such figure."""
    missing = {}
    for line in lines:
        if line.startswith("JSON "):
            data = json.loads(line[5:])
            for name, target in data.get("targets", {}).items():
                figure = name.removeprefix("<=").strip()
                if figure not in data:
                    ceiling = name.startswith("<=")
                    missing[f"{data['benchmark']}: {figure}"] = (
                        ceiling,
                        f"{'<=' if ceiling else '>='} {target:g}",
                    )
    return missing


def table(found: dict[str, Figure]) -> str:
    """The targets' table, for humans."""
    targeted = {name: f for name, f in found.items() if f.target is not None}
    width = max((len(name) for name in targeted), default=20)
    out = [f"\n{'figure':<{width}}  {'median':>12}  {'spread (runs)':>24}  {'target':>10}  met"]
    for name, f in targeted.items():
        met = "not measured" if f.met is None else "yes" if f.met else "NO"
        out.append(f"{name:<{width}}  {f.value:>12.3f}  {f.label:>24}  {f.target:>10}  {met}")
    unmeasured = sum(f.met is None for f in targeted.values())
    out.append(
        f"\n{sum(bool(f.met) for f in targeted.values())} of {len(targeted)} targets met"
        + (f" ({unmeasured} not measured: see the benchmark's output)" if unmeasured else "")
    )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """Where and when the figures were measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    """Print the table of the log; with ``--json``, write every figure there too."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("log", nargs="?", default="build/bench.log")
    parser.add_argument("--json", type=Path, help="write every figure here (bench.json)")
    args = parser.parse_args()
    found = figures(Path(args.log).read_text().splitlines())
    print(table(found))
    if args.json:
        document = {"machine": machine(), "figures": {k: asdict(f) for k, f in found.items()}}
        args.json.write_text(json.dumps(document, indent=1, allow_nan=True) + "\n")
        print(f"every figure ({len(found)}) written to {args.json}")


if __name__ == "__main__":
    main()
