"""History tables for people: the source's precision and the alarm's names."""

from __future__ import annotations

from epics_collector.cli._output import _shown
from epics_collector.pva import Display


def test_a_history_row_is_shown_with_precision_and_alarm_names() -> None:
    row = {"time": 1.5, "value": 2.0 / 3.0, "severity": 3, "status": 7}
    shown = _shown(row, Display("mm", 2))
    assert shown == {
        "time": "1970-01-01T00:00:01.500000+00:00",
        "value": "0.67",
        "severity": "INVALID",
        "status": "CLIENT",
    }
    quiet = _shown({**row, "severity": 0, "status": 0}, Display())
    assert (quiet["value"], quiet["severity"], quiet["status"]) == (2.0 / 3.0, "", "")
