import math

import pytest
from pydantic import ValidationError

from epics_collector.collector._reduce import Compress, Deadband, Include, Reducer


def run(reducer: Reducer, values, severities=None) -> list:
    severities = severities or [0] * len(values)
    out = [
        reducer.push((float(i), v, s, s))
        for i, (v, s) in enumerate(zip(values, severities, strict=True))
    ]
    return [row for row in out if row is not None]


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("mean", [2.0, 5.0]),
        ("min", [1.0, 4.0]),
        ("max", [3.0, 6.0]),
        ("median", [2.0, 5.0]),
        ("first", [1.0, 4.0]),
        ("last", [2.0, 5.0]),
    ],
)
def test_n_to_1_groups(algorithm, expected):
    rows = run(Reducer(Compress(algorithm=algorithm, n=3), None, None), [1, 3, 2, 4, 6, 5, 7])
    assert [r[1] for r in rows] == expected
    assert [r[0] for r in rows] == [2.0, 5.0]  # time of the group's last input


def test_group_severity_is_the_worst_and_partial_group_is_dropped():
    reducer = Reducer(Compress(algorithm="mean", n=2), None, None)
    rows = run(reducer, [1, 2, 3], [0, 2, 1])
    assert rows == [(1.0, 1.5, 2, 2)]
    reducer.reset()
    assert reducer.push((9.0, 5.0, 0, 0)) is None


def test_periodic_keeps_the_last_of_each_window():
    reducer = Reducer(Compress(algorithm="periodic", period=1.0), None, None)
    out = [reducer.push((t, t * 10, 0, 0)) for t in (0.1, 0.5, 0.9, 1.2, 2.5, 2.6)]
    assert [r for r in out if r] == [(0.9, 9.0, 0, 0), (1.2, 12.0, 0, 0)]
    assert reducer.flush() == (2.6, 26.0, 0, 0)


def test_include_limits_count_excluded():
    reducer = Reducer(Compress(), Include(low=0, high=10), None)
    assert [r[1] for r in run(reducer, [-1, 5, 11, 10])] == [5, 10]
    assert reducer.excluded == 2


def test_deadband_absolute_relative_and_alarm_changes():
    absolute = Reducer(Compress(), None, Deadband(absolute=0.5))
    assert [r[1] for r in run(absolute, [1.0, 1.2, 1.6, 1.7, 2.2])] == [1.0, 1.6, 2.2]
    relative = Reducer(Compress(), None, Deadband(relative=10))
    assert [r[1] for r in run(relative, [100.0, 105.0, 111.0, 112.0])] == [100.0, 111.0]
    alarm = Reducer(Compress(), None, Deadband(absolute=1.0))
    assert len(run(alarm, [1.0, 1.0, 1.0], [0, 2, 2])) == 2
    nan = Reducer(Compress(), None, Deadband(absolute=1.0))
    assert len(run(nan, [math.nan, math.nan, 1.0])) == 2


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Compress(algorithm="periodic"),
        lambda: Compress(algorithm="mean", n=0),
        lambda: Compress(algorithm="mean", period=1.0),
        lambda: Compress.model_validate({"algorithm": "average"}),
        lambda: Include(low=2, high=1),
        lambda: Deadband(),
        lambda: Deadband(absolute=1, relative=1),
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        bad()
