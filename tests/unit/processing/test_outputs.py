"""Processing outputs: posted together, never back in time, failures keep the value."""

from __future__ import annotations

import time

import pytest

from epics_collector.core import AttrR, Float, Severity
from epics_collector.processing import OutputPvs


def _outputs() -> tuple[OutputPvs, AttrR, AttrR]:
    a, b = AttrR(Float(), name="a"), AttrR(Float(), name="b")
    return OutputPvs({"a": a, "b": b}), a, b


def test_a_run_carries_its_inputs_time_and_never_goes_back() -> None:
    outputs, a, b = _outputs()
    outputs.publish({"a": 1.0, "b": 2.0}, 100.0, Severity.NO_ALARM)
    assert a.reading.timestamp == b.reading.timestamp == 100.0
    outputs.publish({"a": 3.0}, 90.0, Severity.MINOR)  # a source's clock went back
    assert a.value == 3.0 and a.reading.timestamp == 100.0
    assert a.reading.severity == Severity.MINOR
    outputs.publish({"a": 4.0}, 110.0, Severity.NO_ALARM)
    assert a.reading.timestamp == 110.0


def test_a_failure_keeps_the_values_with_a_major_alarm() -> None:
    outputs, a, b = _outputs()
    outputs.publish({"a": 1.0, "b": 2.0}, 100.0, Severity.NO_ALARM)
    outputs.fail("processing took too long")  # the watchdog: no new time
    assert (a.value, b.value) == (1.0, 2.0)
    assert a.reading.severity == Severity.MAJOR and a.reading.timestamp == 100.0
    assert a.reading.message == "processing took too long"
    outputs.fail("run failed", 120.0)
    assert b.reading.timestamp == 120.0


def test_a_failure_before_any_run_is_stamped_now_and_later_runs_follow() -> None:
    outputs, a, _ = _outputs()
    before = time.time()
    outputs.fail("setup failed")
    assert a.reading.timestamp >= before
    outputs.publish({"a": 1.0}, 100.0, Severity.NO_ALARM)  # an old source time
    assert a.reading.timestamp >= before


def test_undeclared_outputs_are_refused_before_anything_is_posted() -> None:
    outputs, a, _ = _outputs()
    with pytest.raises(ValueError, match="undeclared outputs"):
        outputs.publish({"a": 1.0, "c": 2.0}, 100.0, Severity.NO_ALARM)
    assert a.reading.status != 0  # still the initial, undefined value
