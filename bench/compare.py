"""Which figures moved between two ``bench.json`` files by more than their spread.

``make bench-compare BASE=bench/baseline.json`` compares ``build/bench.json`` (the last
``make bench``) with a baseline. A figure *moved* when its median changed by more than
its spread (the larger of the two runs'): more than the rounds themselves scatter by.
The spread of four rounds or more is 1.5 times their interquartile range (Tukey's
fence: one stray round, a page-cache writeback under the raw side, no longer hides a
move); of fewer, highest - lowest. A figure measured once has no spread of its own; it
is given one of ``--noise`` (default 25%, what one run swings by on a shared 2-core
machine), so only a figure measured in rounds can show a small move.

A moved figure with a target (its direction is known: ``>=`` higher is better) is a
*regression* or an *improvement*; the others are printed as moved. The exit status is 1
when anything regressed. Figures that only one file has are listed, never compared.

Whole runs an hour apart differ by more than one run's rounds: the same machine wrote
raw files 20-27% slower in places. So an absolute figure (us/row, ms) that has a
*judge* (its ratio to the raw reference measured in the same rounds, ``judge`` in
bench.json) is a regression only when its judge moved the wrong way too; when the judge
held, the reference slowed alike and the verdict is *drift* (the machine, not the code).
A judge whose own spread is wider than the figure's move cannot tell (a raw reference
as noisy as file writes under writeback): the regression stands.
A figure given a range in one run (a ladder's rung: the true rate lies within it) is
judged by that range.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

FENCE = 1.5  # x the interquartile range: how far rounds may scatter (Tukey)


def spread(figure: dict[str, Any], noise: float) -> float:
    """How far a figure's rounds scatter (``noise`` x value for one run).

    1.5 x the interquartile range when known (four rounds or more), else highest - lowest.
    """
    if figure.get("q1") is not None and figure.get("q3") is not None:
        return FENCE * (figure["q3"] - figure["q1"])
    if figure["runs"] >= 2:
        return figure["high"] - figure["low"]
    return abs(figure["value"]) * noise


def _rung(figure: dict[str, Any]) -> bool:
    """Whether the figure was measured once with a range of its own (a ladder's rung)."""
    return figure["runs"] < 2 and figure["high"] > figure["low"]


def _within(value: float, figure: dict[str, Any]) -> bool:
    return figure["low"] <= value <= figure["high"]


def moved(base: dict[str, Any], new: dict[str, Any], noise: float) -> bool:
    """Whether the medians differ by more than the larger of the two spreads.

    A change smaller than 2% of the figure's target is never a move (a stall of 0.3 ms
    that became 0.5 ms, against a target of 0.5 s, is not news).
    """
    if any(math.isnan(f["value"]) for f in (base, new)):
        return False
    change = abs(new["value"] - base["value"])
    target = new.get("target") or base.get("target")
    if target and change < 0.02 * abs(float(target.split()[-1])):
        return False
    if _rung(base) or _rung(new):  # each lies outside the other's rung
        return not _within(new["value"], base) and not _within(base["value"], new)
    return change > max(spread(base, noise), spread(new, noise))


def verdict(base: dict[str, Any], new: dict[str, Any]) -> str:
    """'regression', 'improvement' or 'moved' (no target: no direction)."""
    target = new.get("target") or base.get("target")
    if not target:
        return "moved"
    return _direction(target, base["value"], new["value"])


def _direction(better: str, before: float, after: float) -> str:
    """'improvement' or 'regression' of a change, ``better`` being '>= ...' or '<= ...'."""
    return "improvement" if (after > before) == better.startswith(">=") else "regression"


def judged(
    name: str, base: dict[str, Any], new: dict[str, Any], noise: float
) -> tuple[str, str] | None:
    """A regression's judge: ('drift' or 'regression', why); None without a judge.

    The judge is the figure's ratio to the raw reference of the same rounds: when the
    raw side slowed alike, the ratio held and the move is the machine's.
    """
    judge = new["figures"][name].get("judge") or base["figures"][name].get("judge")
    if not judge:
        return None
    better, _, judge_name = judge.partition(" ")
    before, after = base["figures"].get(judge_name), new["figures"].get(judge_name)
    if before is None or after is None:
        return None
    said = f"its judge {judge_name!r}: {_text(before)} -> {_text(after)}"
    if moved(before, after, noise) and _direction(better, before["value"], after["value"]) == (
        "regression"
    ):
        return "regression", said
    was, now = base["figures"][name]["value"], new["figures"][name]["value"]
    change = abs(now - was) / abs(was or 1)
    blur = max(spread(before, noise), spread(after, noise)) / abs(after["value"] or 1)
    if blur >= change:  # the judge scatters more than the figure moved: it cannot tell
        return "regression", f"{said} scatters by {blur:.0%}, too much to tell"
    return "drift", said + " is no worse: the raw reference moved alike"


def compare(base: dict[str, Any], new: dict[str, Any], noise: float) -> list[tuple[str, ...]]:
    """(verdict, figure, base text, new text, change) for every figure that moved.

    A regression with a judge that held is 'drift' instead (its text says the judge).
    """
    rows = []
    for name, now in new["figures"].items():
        before = base["figures"].get(name)
        if before is None or not moved(before, now, noise):
            continue
        change = (now["value"] - before["value"]) / abs(before["value"]) if before["value"] else 0
        said, text = verdict(before, now), _text(now)
        if said == "regression" and (judgement := judged(name, base, new, noise)) is not None:
            said, text = judgement[0], f"{text}; {judgement[1]}"
        rows.append((said, name, _text(before), text, f"{change * 100:+.0f}%"))
    order = {"regression": 0, "improvement": 1, "drift": 2, "moved": 3}
    return sorted(rows, key=lambda row: order[row[0]])


def _text(figure: dict[str, Any]) -> str:
    if figure["runs"] >= 2 or _rung(figure):
        return f"{figure['value']:,.3f} [{figure['low']:,.3f} .. {figure['high']:,.3f}]"
    return f"{figure['value']:,.3f} (one run)"


def main() -> int:
    """Print what moved; 1 when a figure with a target regressed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base", type=Path, help="the baseline (bench/baseline.json)")
    parser.add_argument("new", type=Path, nargs="?", default=Path("build/bench.json"))
    parser.add_argument("--noise", type=float, default=0.25, help="spread given to one run")
    args = parser.parse_args()
    base, new = (json.loads(path.read_text()) for path in (args.base, args.new))
    print(f"base: {base['machine']}\nnew:  {new['machine']}")
    rows = compare(base, new, args.noise)
    for row in rows:
        print(f"{row[0]:<11}  {row[1]}\n             {row[2]}  ->  {row[3]}  ({row[4]})")
    common = base["figures"].keys() & new["figures"].keys()
    only = sorted(new["figures"].keys() - base["figures"].keys())
    print(
        f"\n{len(common)} figures compared: {sum(r[0] == 'regression' for r in rows)} "
        f"regressed, {sum(r[0] == 'improvement' for r in rows)} improved, "
        f"{sum(r[0] == 'moved' for r in rows)} moved (no target); "
        f"{len(base['figures']) - len(common)} only in the base, {len(only)} only in the new"
    )
    for name in only[:10]:
        print(f"  new figure: {name}")
    if len(only) > 10:
        print(f"  ... and {len(only) - 10} more")
    return 1 if any(row[0] == "regression" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
