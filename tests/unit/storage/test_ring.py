import numpy as np
import pytest

from epics_collector.storage import Columns, Ring


def fill(ring: Ring, values) -> None:
    for v in values:
        ring.append(float(v), float(v) * 10, int(v) % 4, 0)


def test_keeps_newest_in_order_when_overwriting():
    ring = Ring(5)
    fill(ring, range(12))
    rows = ring.columns()
    assert list(rows.time) == [7, 8, 9, 10, 11]
    assert list(rows.value) == [70, 80, 90, 100, 110]
    assert list(rows.severity) == [3, 0, 1, 2, 3]
    assert ring.total == 12 and len(ring) == 5 and ring.full
    assert list(ring.columns(2).time) == [10, 11]


def test_fill_mode_refuses_when_full():
    ring = Ring(3, overwrite=False)
    assert [ring.append(i, i, 0, 0) for i in range(5)] == [True, True, True, False, False]
    assert list(ring.columns().time) == [0, 1, 2]


def test_grows_by_doubling_and_stays_under_60_bytes_per_row():
    ring = Ring(100_000)
    fill(ring, range(5000))
    assert list(ring.columns(3).time) == [4997, 4998, 4999]
    assert ring.nbytes / len(ring) <= 60
    fill(ring, range(5000, 100_000))
    assert ring.nbytes / len(ring) == 26  # time float and ns, value, severity, status


def test_extend_keeps_capacity_newest():
    ring = Ring(4000)
    fill(ring, range(3000))
    n = 5000
    ring.extend(
        Columns(
            np.arange(n, 2 * n, dtype=float),
            np.zeros(n),
            np.zeros(n, np.int8),
            np.zeros(n, np.int8),
        )
    )
    rows = ring.columns()
    assert len(rows) == 4000
    assert rows.time[0] == 6000 and rows.time[-1] == 9999
    assert ring.total == 8000


def test_string_rows_and_clear():
    ring = Ring(3, dtype=object)
    ring.append(1.0, "a", 0, 0)
    ring.append(2.0, "b", 0, 0)
    assert list(ring.columns().value) == ["a", "b"]
    ring.clear()
    assert len(ring) == 0 and ring.total == 0


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        Ring(0)


def test_array_rows_sized_from_the_first_value_and_bounded_by_max_bytes():
    ring = Ring(1000, row_shape=None, max_bytes=10 * (8 * 4 + 10))
    assert not ring.sized and len(ring.columns()) == 0
    for i in range(15):
        ring.append(float(i), np.full(4, i, np.float64), 0, 0)
    assert ring.row_shape == (4,) and ring.capacity == 10
    rows = ring.columns()
    assert rows.value.shape == (10, 4) and rows.value[0, 0] == 5
    row = ring.row(-1)
    assert row is not None and row[0] == 14.0 and list(row[1]) == [14.0] * 4
    assert ring.row(10) is None


def test_array_rows_are_kept_by_reference_and_read_as_one_2d_array():
    ring = Ring(3, row_shape=None)
    received = np.arange(4.0)
    received.flags.writeable = False  # as p4p hands over a received waveform
    mine = np.ones(4)  # a writable array: its owner may change it later
    ring.append(1.0, received, 0, 0)
    ring.append(2.0, mine, 0, 0)
    mine[:] = 7.0
    assert ring._value[0] is received  # noqa: SLF001 (no copy of a received row)
    rows = ring.columns()
    assert rows.value.shape == (2, 4) and rows.value.dtype == np.float64
    assert list(rows.value[1]) == [1.0, 1.0, 1.0, 1.0], "a writable row was not copied"
    ring.append(3.0, np.arange(4, dtype=np.int32), 0, 0)  # converted to the ring's dtype
    ring.append(4.0, np.full(4, 5.0), 0, 0)  # overwrites the oldest
    assert list(ring.columns().time) == [2.0, 3.0, 4.0]
    assert ring.columns().value.dtype == np.float64
    newest = ring.row(-1)
    assert newest is not None and list(newest[1]) == [5.0] * 4
    assert len(Ring(3, row_shape=None).columns().value) == 0
