"""Push arguments are checked before they reach a recorder (issue 18, finding 3)."""

from __future__ import annotations

import pytest

from epics_collector.collector._push import parse_push

NOW = 1_800_000_000.0


def push(channel="c", value="1.5", time="", severity="0", max_bytes=100):
    return parse_push(channel, value, time, severity, now=NOW, max_bytes=max_bytes)


def test_a_good_push_is_typed_and_stamped_now_by_default():
    sample = push(value="4.25")
    assert (sample.kind, sample.value, sample.time, sample.severity) == ("number", 4.25, NOW, 0)
    text = push(value="crystal mounted", time="1700000000.5", severity="1")
    assert (text.kind, text.value, text.time, text.severity) == (
        "string",
        "crystal mounted",
        1700000000.5,
        1,
    )


@pytest.mark.parametrize("channel", ["", "-x", "a b", "a:b", "x" * 61, "é", None])
def test_channel_names_follow_the_alias_rule(channel):
    with pytest.raises(ValueError, match="alias rule"):
        push(channel=channel)


@pytest.mark.parametrize("time", ["inf", "-inf", "nan", "1e20", "-5", "0", str(NOW + 90_000)])
def test_times_outside_the_window_are_refused(time):
    with pytest.raises(ValueError, match="outside 1990-01-01"):
        push(time=time)


@pytest.mark.parametrize(("argument", "bad"), [("time", "soon"), ("severity", "high")])
def test_words_where_numbers_belong_are_refused(argument, bad):
    with pytest.raises(ValueError, match="is not a number"):
        push(**{argument: bad})


@pytest.mark.parametrize("severity", ["4", "-1", "1.5"])
def test_severity_is_0_to_3(severity):
    with pytest.raises(ValueError, match="not 0, 1, 2 or 3"):
        push(severity=severity)


def test_values_are_capped():
    push(value="x" * 100)
    with pytest.raises(ValueError, match="push_max_bytes"):
        push(value="x" * 101)
