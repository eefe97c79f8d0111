"""The bench's own tools: rounds and their spread, bench.json, and what compare calls a move.

Benchmarks are not tests (``make bench`` measures, CI never runs it), but the tools that
turn their output into a verdict are code like any other: a compare that never reports a
regression would hide every one.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).parent.parent.parent / "bench"
sys.path.insert(0, str(BENCH))  # bench/ is scripts, not a package
compare = importlib.import_module("compare")
summary = importlib.import_module("summary")
_common = importlib.import_module("_common")
Runs, report = _common.Runs, _common.report


def _figures(capsys: pytest.CaptureFixture[str], **figures: Any) -> dict[str, Any]:
    report("b", figures, {"<= lost": 0, "ratio": 0.9, "<= us": 2.0})
    return summary.figures(capsys.readouterr().out.splitlines())


def test_rounds_are_reported_as_their_median_with_the_spread(capsys) -> None:
    found = _figures(capsys, ratio=Runs([0.8, 1.1, 0.95]), us=1.5)
    assert (found["b: ratio"].value, found["b: ratio"].low, found["b: ratio"].high) == (
        0.95,
        0.8,
        1.1,
    )
    assert found["b: ratio"].runs == 3 and found["b: ratio"].met
    assert found["b: us"].runs == 1 and found["b: us"].label == "one run"


def test_a_loss_in_any_round_is_the_figure_never_a_median(capsys) -> None:
    found = _figures(capsys, lost=Runs([0, 7, 0]), ratio=1.0, us=1.0)
    assert found["b: lost"].value == 7 and found["b: lost"].met is False


def test_a_failed_baseline_is_not_measured_not_a_zero(capsys) -> None:
    found = _figures(capsys, ratio=float("nan"), lost=0, us=1.0)
    assert found["b: ratio"].met is None
    assert "not measured" in summary.table(found)


def _document(**figures: tuple[float, float, float, int, str | None]) -> dict[str, Any]:
    return {
        "machine": {},
        "figures": {
            name: {"value": v, "low": lo, "high": hi, "runs": n, "target": t}
            for name, (v, lo, hi, n, t) in figures.items()
        },
    }


def test_a_move_within_the_spread_is_noise_and_beyond_it_a_regression() -> None:
    base = _document(flush=(1.75, 1.66, 1.84, 5, "<= 2.5"), ratio=(0.93, 0.76, 1.13, 5, ">= 0.9"))
    noise = _document(flush=(1.80, 1.70, 1.90, 5, "<= 2.5"), ratio=(0.80, 0.70, 1.0, 5, ">= 0.9"))
    assert compare.compare(base, noise, 0.25) == []
    slower = _document(flush=(2.28, 2.2, 2.4, 5, "<= 2.5"), ratio=(0.93, 0.8, 1.0, 5, ">= 0.9"))
    rows = compare.compare(base, slower, 0.25)
    assert [(row[0], row[1]) for row in rows] == [("regression", "flush")]
    faster = _document(flush=(1.2, 1.1, 1.3, 5, "<= 2.5"), ratio=(0.93, 0.8, 1.0, 5, ">= 0.9"))
    assert compare.compare(base, faster, 0.25)[0][0] == "improvement"


def test_a_figure_measured_once_needs_a_larger_move(tmp_path: Path, monkeypatch) -> None:
    base = _document(start=(1.0, 1.0, 1.0, 1, None), p99=(10.0, 10.0, 10.0, 1, "<= 30"))
    assert compare.compare(base, _document(start=(1.2, 1.2, 1.2, 1, None)), 0.25) == []
    moved = compare.compare(base, _document(p99=(14.0, 14.0, 14.0, 1, "<= 30")), 0.25)
    assert [(row[0], row[1]) for row in moved] == [("regression", "p99")]
    (tmp_path / "base.json").write_text(json.dumps(base))
    (tmp_path / "new.json").write_text(json.dumps(_document(p99=(14.0, 14.0, 14.0, 1, "<= 30"))))
    monkeypatch.setattr(
        sys, "argv", ["compare", str(tmp_path / "base.json"), str(tmp_path / "new.json")]
    )
    assert compare.main() == 1  # make bench-compare fails on a regression


def _judged(flush: float, ratio: float, spread: float = 0.05) -> dict[str, Any]:
    document = _document(
        flush=(flush, flush - 0.05, flush + 0.05, 5, "<= 2.5"),
        ratio=(ratio, ratio - spread, ratio + spread, 5, None),
    )
    document["figures"]["flush"]["judge"] = ">= ratio"  # raw / ours: higher is better
    return document


def test_a_figure_whose_raw_reference_slowed_alike_drifted_and_did_not_regress() -> None:
    base = _judged(1.78, 0.77)
    machine_slower = _judged(2.14, 0.76)  # raw files slowed alike: the ratio held
    rows = compare.compare(base, machine_slower, 0.25)
    assert [(row[0], row[1]) for row in rows] == [("drift", "flush")]
    assert "no worse" in rows[0][3]
    code_slower = _judged(2.61, 0.53)  # the flush itself 30% slower: the ratio fell
    rows = compare.compare(base, code_slower, 0.25)
    assert [(row[0], row[1]) for row in rows] == [("regression", "flush"), ("moved", "ratio")]


def test_a_rung_figure_moves_only_beyond_its_rung(capsys) -> None:
    report("b", {"ratio": _common.Between(1.0, 0.5, 2.0)}, {"ratio": 0.9})
    found = summary.figures(capsys.readouterr().out.splitlines())
    rung = found["b: ratio"]
    assert (rung.value, rung.low, rung.high, rung.runs) == (1.0, 0.5, 2.0, 1)
    assert rung.label.startswith("rung")
    base = {"machine": {}, "figures": {"b: ratio": summary.asdict(rung)}}
    one_rung_down = _document(**{"b: ratio": (0.5, 0.25, 1.0, 1, ">= 0.9")})
    assert compare.compare(base, one_rung_down, 0.25) == []
    two_rungs_down = _document(**{"b: ratio": (0.25, 0.125, 0.5, 1, ">= 0.9")})
    assert compare.compare(base, two_rungs_down, 0.25)[0][0] == "regression"


def test_one_stray_round_no_longer_hides_a_move(capsys) -> None:
    """Five rounds: the spread is 1.5 x their interquartile range, not highest - lowest."""
    report("b", {"us": Runs([2.0, 2.04, 2.08, 2.1, 2.2])}, {"<= us": 2.5})
    report("c", {"us": Runs([2.05, 2.1, 2.12, 2.15, 3.4])}, {"<= us": 2.5})  # same, one stray
    report("d", {"us": Runs([2.6, 2.65, 2.7, 2.72, 3.44])}, {"<= us": 2.5})  # 30% slower
    found = summary.figures(capsys.readouterr().out.splitlines())
    documents = {
        name: {"machine": {}, "figures": {"us": summary.asdict(found[f"{name}: us"])}}
        for name in "bcd"
    }
    assert found["d: us"].q1 is not None and found["d: us"].q3 is not None
    assert compare.compare(documents["b"], documents["c"], 0.25) == []
    rows = compare.compare(documents["b"], documents["d"], 0.25)
    assert [row[0] for row in rows] == ["regression"]
    # highest - lowest would have hidden it (3.44 - 2.6 > 2.7 - 2.08)
    assert 2.7 - 2.08 < 3.44 - 2.6


def test_a_judge_that_scatters_more_than_the_move_cannot_excuse_it() -> None:
    base = _judged(2.08, 1.0, spread=0.2)  # raw file writes under writeback: +-20%
    slower = _judged(2.6, 0.95, spread=0.2)  # +25%: the ratio "held" within its scatter
    rows = compare.compare(base, slower, 0.25)
    assert [(row[0], row[1]) for row in rows] == [("regression", "flush")]
    assert "too much to tell" in rows[0][3]
