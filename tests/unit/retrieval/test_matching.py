"""Which names a management request selects, and the names a POST body lists."""

from __future__ import annotations

import json
import time

import pytest

from epics_collector.retrieval._errors import RequestError
from epics_collector.retrieval._matching import MAX_NAMES, matching, names_from_body
from epics_collector.retrieval._pvinfo import human, iso_millis, java_double

NAMES = sorted(["LAB:A", "LAB:B", "LAB:AB", "OTHER:A"])


def test_globs_regexes_and_limits_as_the_appliance_takes_them() -> None:
    assert matching(NAMES, ["LAB:*"], None, -1) == ["LAB:A", "LAB:AB", "LAB:B"]
    assert matching(NAMES, ["LAB:?", "OTHER:A"], None, -1) == ["LAB:A", "LAB:B", "OTHER:A"]
    assert matching(NAMES, [], "LAB:A.*", -1) == ["LAB:A", "LAB:AB"]  # the whole name
    assert matching(NAMES, [], "A", -1) == []  # (a part of a name is no match)
    assert matching(NAMES, [], None, 2) == NAMES[:2]
    assert matching(NAMES, ["LAB:A", "NEW:X"], None, -1) == ["LAB:A"]
    assert matching(NAMES, ["LAB:A", "NEW:X"], None, -1, unknown=True) == ["LAB:A", "NEW:X"]
    with pytest.raises(RequestError, match="RE2"):
        matching(NAMES, [], "(a)\\1", -1)


def test_post_bodies_in_every_form_the_appliance_reads() -> None:
    listed = json.dumps(["A", {"pv": "B"}]).encode()
    assert names_from_body("application/json; charset=utf-8", listed) == ["A", "B"]
    assert names_from_body("text/plain", b"A\n\nB\n") == ["A", "B"]
    assert names_from_body("application/x-www-form-urlencoded", b"pv=A,B") == ["A", "B"]
    assert names_from_body("", b"pv=A%3AX,B") == ["A:X", "B"]
    for bad in (b"{}", b"[1]", b"not json", b"[" * 100_000):
        with pytest.raises(RequestError):
            names_from_body("application/json", bad)
    with pytest.raises(RequestError) as refused:
        names_from_body("text/plain", b"A\n" * (MAX_NAMES + 1))
    assert refused.value.status == 413


def test_times_and_numbers_are_written_as_the_appliance_writes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "UTC")  # (human times are the service's local time)
    time.tzset()
    try:
        assert human(1_796_000_000.7) == "Nov/30/2026 00:53:20 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert human(0.0) == "Never" and human(float("nan")) == "Never"
    assert iso_millis(1_796_000_000.1234) == "2026-11-30T00:53:20.123Z"
    assert [java_double(v) for v in (3, 21.9, "nan", float("inf"), None)] == [
        "3.0",
        "21.9",
        "NaN",
        "Infinity",
        "NaN",
    ]
