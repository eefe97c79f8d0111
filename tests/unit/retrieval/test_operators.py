"""The appliance's operators, checked against numpy on the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from epics_collector.retrieval._operators import Operator, OperatorError, apply, parse
from epics_collector.retrieval._pb import PayloadType
from epics_collector.retrieval._samples import Samples

START = 1_796_000_000  # a multiple of 10 and of 100


def _rows(secs: np.ndarray, values: np.ndarray, severity: np.ndarray | None = None) -> Samples:
    n = len(secs)
    return Samples(
        secs.astype(np.int64),
        np.zeros(n, np.int32),
        values,
        np.zeros(n, np.int32) if severity is None else severity.astype(np.int32),
        np.zeros(n, np.int32),
    )


RNG = np.random.default_rng(7)
SECS = np.sort(RNG.choice(np.arange(START, START + 100), 60, replace=False))
SECS = SECS[(SECS < START + 40) | (SECS >= START + 60)]  # bins 4 and 5 (of 10 s) are empty
VALUES = RNG.normal(5, 2, len(SECS))
SEVERITY = RNG.integers(0, 3, len(SECS))
ROWS = _rows(SECS, VALUES, SEVERITY)
NONE = Samples.empty()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mean", np.mean),
        ("median", np.median),
        ("min", np.min),
        ("max", np.max),
        ("std", lambda v: np.std(v, ddof=1)),
        ("variance", lambda v: np.var(v, ddof=1)),
        ("jitter", lambda v: np.std(v, ddof=1) / np.mean(v)),
        ("firstFill", lambda v: v[0]),
        ("lastFill", lambda v: v[-1]),
        ("count", len),
    ],
)
def test_statistics_per_bin_match_numpy(name: str, expected) -> None:
    result = apply(Operator(name, 10), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE)
    got = result.rows
    assert result.kind is PayloadType.SCALAR_DOUBLE
    assert list(got.secs) == [START + 10 * k + 5 for k in range(10)]  # bin middles, filled
    for k in range(10):
        in_bin = (SECS // 10) == (START // 10 + k)
        if in_bin.any():
            assert got.value[k] == pytest.approx(expected(VALUES[in_bin])), (name, k)
            assert got.severity[k] == SEVERITY[in_bin].max()
        elif name == "count":
            assert got.value[k] == 0
        else:  # an empty bin repeats the previous one
            assert got.value[k] == got.value[k - 1]


def test_first_and_last_sample_are_the_recorded_rows_and_skip_empty_bins() -> None:
    first = apply(
        Operator("firstSample", 10), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE
    )
    last = apply(
        Operator("lastSample", 10), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE
    )
    bins = SECS // 10
    assert list(first.rows.secs) == [SECS[bins == b][0] for b in np.unique(bins)]
    assert list(last.rows.value) == [VALUES[bins == b][-1] for b in np.unique(bins)]
    assert len(first.rows) == 8


def test_nth_ncount_and_the_sample_before_the_range() -> None:
    nth = apply(Operator("nth", 7), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE)
    assert list(nth.rows.value) == list(VALUES[::7])
    ncount = apply(
        Operator("ncount", 900), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE
    )
    assert list(ncount.rows.value) == [len(VALUES)] and list(ncount.rows.secs) == [START]
    before = _rows(np.array([START - 500]), np.array([42.0]))
    later = ROWS.take(ROWS.secs > START)
    mean = apply(Operator("mean", 10), later, before, START, START + 99, PayloadType.SCALAR_DOUBLE)
    assert mean.rows.secs[0] == START - 10 + 5 and mean.rows.value[0] == 42.0  # its own bin
    at_start = _rows(np.array([START, START + 1]), np.array([1.0, 2.0]))  # a row at `from`:
    mean = apply(
        Operator("mean", 10), at_start, before, START, START + 9, PayloadType.SCALAR_DOUBLE
    )
    assert list(mean.rows.value) == [1.5]  # the one before is not needed


def test_optimized_is_raw_when_few_and_bins_of_five_statistics_otherwise() -> None:
    few = apply(
        Operator("optimized", 1000), ROWS, NONE, START, START + 99, PayloadType.SCALAR_DOUBLE
    )
    assert few.kind is PayloadType.SCALAR_DOUBLE and list(few.rows.value) == list(VALUES)
    many = apply(
        Operator("optimized", 10), ROWS, NONE, START, START + 100, PayloadType.SCALAR_DOUBLE
    )
    assert many.kind is PayloadType.WAVEFORM_DOUBLE and many.elements == 5
    first_bin = VALUES[SECS // 10 == START // 10]
    assert many.rows.value[0] == pytest.approx(
        [first_bin.mean(), first_bin.std(ddof=1), first_bin.min(), first_bin.max(), len(first_bin)]
    )


def test_gap_rows_are_left_out_of_statistics() -> None:
    rows = _rows(np.array([START, START + 1, START + 2]), np.array([1.0, np.nan, 3.0]))
    mean = apply(Operator("mean", 10), rows, NONE, START, START + 9, PayloadType.SCALAR_DOUBLE)
    count = apply(Operator("count", 10), rows, NONE, START, START + 9, PayloadType.SCALAR_DOUBLE)
    assert list(mean.rows.value) == [2.0] and list(count.rows.value) == [3]


def test_requests_name_their_operator_or_get_the_list() -> None:
    assert parse("LAB:X") == ("LAB:X", None)
    assert parse("mean_600(LAB:X)") == ("LAB:X", Operator("mean", 600))
    assert parse("optimized_1000(LAB:X:a(b))") == ("LAB:X:a(b)", Operator("optimized", 1000))
    with pytest.raises(OperatorError, match="unknown operator 'avg'; supported: mean"):
        parse("avg_10(LAB:X)")
    with pytest.raises(OperatorError, match="positive"):
        parse("mean_0(LAB:X)")
    with pytest.raises(OperatorError, match="positive"):
        parse("mean_-5(LAB:X)")


def test_caplotbinning_follows_the_appliances_rule_computed_by_hand() -> None:
    """CAPlotBinning.java over 10 s bins, each case written out by hand.

    Bin 0: none (empty, left out); bin 1: one event (as is, whole seconds); bin 2: two
    (both as is); bin 3: five events, one repeated stamp (skipped) and a gap (NaN, out of
    the minimum and maximum); the newest event before the range comes first, alone.
    """
    s = START
    secs = np.array(
        [s - 30, s - 25, s + 12, s + 21, s + 27, s + 30, s + 31, s + 31, s + 35, s + 39]
    )
    nanos = np.array([0, 7, 400_000_000, 1, 2, 3, 4, 4, 5, 6], np.int32)
    values = np.array([9.0, 8.0, 1.0, 2.0, 3.0, 5.0, -1.0, 99.0, np.nan, 4.0])
    severity = np.array([2, 1, 0, 1, 0, 0, 2, 3, 2, 1], np.int32)
    rows = Samples(secs, nanos, values, severity, np.zeros(10, np.int32))
    before, inside = rows.take(slice(0, 2)).take(slice(1, 2)), rows.take(slice(2, None))
    result = apply(
        Operator("caplotbinning", 10), inside, before, s, s + 39, PayloadType.SCALAR_DOUBLE
    )
    got = result.rows
    assert result.kind is PayloadType.SCALAR_DOUBLE
    expected = [
        (s - 25, 8.0, 0),  # the value before the range: its bin of its own, severity 0
        (s + 12, 1.0, 0),  # one event: as is (whole seconds)
        (s + 21, 2.0, 1),  # two events: both as is, with the bin's highest severity
        (s + 27, 3.0, 1),
        (s + 30, 5.0, 2),  # first, at the bin's start (the repeated stamp's 99 skipped)
        (s + 32, -1.0, 2),  # minimum, a quarter in (int(0.25 * 10))
        (s + 35, 5.0, 2),  # maximum, halfway
        (s + 37, 4.0, 2),  # last, three quarters in
    ]
    assert list(got.secs) == [e[0] for e in expected]
    assert list(got.nanos) == [0] * len(expected)
    assert list(got.value) == [e[1] for e in expected]
    assert list(got.severity) == [e[2] for e in expected]
    # no event in range: nothing, not even the value before
    empty = apply(Operator("caplotbinning", 10), NONE, before, s, s + 9, PayloadType.SCALAR_DOUBLE)
    assert len(empty.rows) == 0
