"""What the dashboard sends: gaps as null, replaced traces sent whole, strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from epics_collector.web import Hub, Trace
from epics_collector.web._app import _json_numbers, to_json
from epics_collector.web._hub import PageView
from epics_collector.web._trace import Display


def test_non_finite_values_are_gaps_sent_as_null() -> None:
    trace = Trace("t", "col")
    trace.extend([1.0, 2.0, 3.0, 4.0], [1.5, math.nan, math.inf, 2.5], [0, 3, 0, 1])
    assert list(trace.points) == [(1.0, 1.5, 0), (2.0, None, 3), (3.0, None, 0), (4.0, 2.5, 1)]
    text = to_json({"points": trace.since(0)})
    assert json.loads(text)["points"][1] == [2.0, None, 3]


def test_history_numbers_send_nan_and_infinities_as_null() -> None:
    assert _json_numbers([1.5, math.nan, -math.inf, math.inf]) == [1.5, None, None, None]
    assert _json_numbers(None) == []


def test_strict_json_refuses_a_nan_that_slipped_through() -> None:
    with pytest.raises(ValueError, match="JSON"):
        to_json({"value": math.nan})


def test_only_newer_points_are_added() -> None:
    trace = Trace("t", "col")
    trace.extend([1.0, 2.0], [1.0, 2.0])
    trace.extend([2.0, 3.0], [9.0, 3.0])  # 2.0 is held already
    assert [p[0] for p in trace.points] == [1.0, 2.0, 3.0]
    assert trace.since(2) == [(3.0, 3.0, 0)]


def test_a_replaced_trace_is_sent_whole_and_marked_reset() -> None:
    hub = Hub("NOBODY:FAC:")
    try:
        trace = hub.traces["P:a"] = Trace("a", "col")
        trace.extend([1.0, 2.0], [1.0, 2.0])
        page = PageView()
        first = hub.snapshot(page)
        assert first["reset"] == ["P:a"] and len(first["traces"]["P:a"]) == 2
        assert first["meta"]["P:a"]["label"] == "a"
        quiet = hub.snapshot(page)
        assert (quiet["traces"], quiet["meta"]) == ({}, {})  # nothing new: nothing sent
        trace.replace(np.array([5.0]), np.array([7.0]))
        again = hub.snapshot(page)
        assert again["reset"] == ["P:a"] and again["traces"]["P:a"] == [(5.0, 7.0, 0)]
        assert again["meta"]["P:a"]["generation"] == 1
    finally:
        hub.connection.close()


def test_display_reads_units_and_precision_and_ignores_nonsense() -> None:
    assert Display.of({"display.units": "degC", "display.precision": 3}) == Display("degC", 3)
    assert Display.of({"display.units": "V", "display.precision": -4}) == Display("V", None)
    assert Display.of({}) == Display()
