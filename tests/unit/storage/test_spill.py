from typing import Any

import numpy as np

from epics_collector.storage import Columns, SpillFile
from epics_collector.storage._spill import RECORD


def rows(start: int, n: int, dtype: Any = np.float64) -> Columns:
    t = np.arange(start, start + n, dtype=float)
    values = t.astype(dtype) if dtype is not object else np.array([f"v{int(x)}" for x in t], object)
    return Columns(t, values, np.full(n, 1, np.int8), np.full(n, 2, np.int8))


def test_round_trip_and_append_across_runs(tmp_path):
    spill = SpillFile(tmp_path / "a.rec")
    spill.append(rows(0, 10))
    spill.flush()
    spill.append(rows(10, 5))
    spill.flush()
    loaded = SpillFile(tmp_path / "a.rec").load()
    assert list(loaded.time) == list(range(15))
    assert list(loaded.value) == list(range(15))
    assert set(loaded.severity) == {1} and set(loaded.status) == {2}


def test_torn_record_is_cut_off(tmp_path):
    path = tmp_path / "a.rec"
    spill = SpillFile(path)
    spill.append(rows(0, 3))
    spill.flush()
    with path.open("ab") as file:
        file.write(b"\x01" * (RECORD.itemsize - 5))  # a kill in the middle of a write
    again = SpillFile(path)
    assert list(again.load().time) == [0, 1, 2]
    again.append(rows(3, 1))
    again.flush()
    assert list(SpillFile(path).load().time) == [0, 1, 2, 3]


def test_unflushed_rows_are_not_on_disk(tmp_path):
    spill = SpillFile(tmp_path / "a.rec")
    spill.append(rows(0, 3))
    assert len(SpillFile(tmp_path / "a.rec").load()) == 0


def test_text_channels_and_torn_line(tmp_path):
    path = tmp_path / "s.jsonl"
    spill = SpillFile(path, text=True)
    spill.append(rows(0, 3, object))
    spill.flush()
    with path.open("ab") as file:
        file.write(b'[3.0, "v3", 0')
    loaded = SpillFile(path, text=True).load()
    assert list(loaded.value) == ["v0", "v1", "v2"]
    assert path.read_bytes().endswith(b"\n")


def test_rewrite_replaces_atomically(tmp_path):
    spill = SpillFile(tmp_path / "a.rec")
    spill.append(rows(0, 100))
    spill.flush()
    spill.rewrite(rows(90, 10))
    assert list(SpillFile(tmp_path / "a.rec").load().time) == list(range(90, 100))
    assert not list(tmp_path.glob("*.tmp"))


def test_array_rows_round_trip_with_their_layout(tmp_path):
    path = tmp_path / "img.rec"
    spill = SpillFile(path)
    images = np.arange(3 * 2 * 3, dtype=np.uint16).reshape(3, 2, 3)
    spill.append(Columns(np.arange(3.0), images, np.zeros(3, np.int8), np.zeros(3, np.int8)))
    spill.flush()
    loaded = SpillFile(path).load()
    assert loaded.value.dtype == np.uint16 and np.array_equal(loaded.value, images)
