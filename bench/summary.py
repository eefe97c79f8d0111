"""One table of every benchmark figure that has a target: ours, reference, ratio, met.

Reads the ``JSON`` lines the benchmarks print (``make bench`` keeps them in
``build/bench.log``) and prints, per target: the figure, its value, the target and
whether it was met. Ratios are computed by each benchmark against the reference it
measured in the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(lines: list[str]) -> list[tuple[str, str, float, str, bool]]:
    """(benchmark, figure, value, target text, met) for every figure with a target."""
    found = []
    for line in lines:
        if not line.startswith("JSON "):
            continue
        data = json.loads(line[5:])
        for figure, target in data.get("targets", {}).items():
            ceiling = figure.startswith("<=")
            name = figure.removeprefix("<=").strip()
            value = float(data.get(name, float("nan")))
            met = value <= target if ceiling else value >= target
            found.append(
                (data["benchmark"], name, value, f"{'<=' if ceiling else '>='} {target:g}", met)
            )
    return found


def main() -> None:
    """Print the table for the log named on the command line (default build/bench.log)."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "build/bench.log")
    table = rows(path.read_text().splitlines())
    width = max((len(f"{b}: {f}") for b, f, *_ in table), default=20)
    print(f"\n{'figure':<{width}}  {'value':>12}  {'target':>10}  met")
    for benchmark, figure, value, target, met in table:
        label = f"{benchmark}: {figure}"
        print(f"{label:<{width}}  {value:>12.3f}  {target:>10}  {'yes' if met else 'NO'}")
    print(f"\n{sum(r[4] for r in table)} of {len(table)} targets met")


if __name__ == "__main__":
    main()
