"""The SQLite spill store: atomic flushes, damaged chunks skipped, bad times never served."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from epics_collector.storage import Columns, Ring, SpillStore, concat
from epics_collector.storage._spill import StoreUnavailableError, array_record, read_only, unpack


def rows(start: int, n: int, dtype: type = np.float64) -> Columns:
    t = np.arange(start, start + n, dtype=np.float64) + 1.0
    values = np.array([str(v) for v in t], object) if dtype is object else t * 2
    return Columns(t, values, np.zeros(n, np.int8), np.zeros(n, np.int8))


def loaded(store: SpillStore, channel: str) -> Columns:
    parts = store.load(channel).parts
    return concat(*parts) if parts else Columns.empty()


def test_chunks_reload_in_order_with_meta(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    store.write([("a", rows(0, 10)), ("b", rows(0, 3, object))], {"count": 13})
    store.write([("a", rows(10, 5))], {"count": 18})
    store.close()
    again = SpillStore(tmp_path / "h.sqlite")
    assert list(loaded(again, "a").time) == list(range(1, 16))
    assert list(loaded(again, "b").value) == ["1.0", "2.0", "3.0"]
    assert again.meta() == {"count": 18}
    assert again.rows("a") == 15


def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    store.write([("a", rows(0, 3))], {"count": 3})
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the "disk" is nearly full
    with pytest.raises(sqlite3.OperationalError, match="full"):  # the 2nd chunk does not fit
        store.write([("a", rows(3, 3)), ("b", rows(0, 100_000))], {"count": 100_006})
    assert list(loaded(store, "a").time) == [1, 2, 3]  # neither chunk landed
    assert store.meta() == {"count": 3}
    store._db.execute("PRAGMA max_page_count = 1000000")  # space is back: the retry lands
    store.write([("a", rows(3, 3)), ("b", rows(0, 100_000))], {"count": 100_006})
    assert store.rows("a") == 6 and store.rows("b") == 100_000


def test_a_damaged_chunk_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store = SpillStore(path)
    for start in (0, 10, 20):
        store.write([("a", rows(start, 10))])
    store.close()
    with sqlite3.connect(path) as db:  # flip bytes inside the middle chunk
        db.execute("UPDATE chunks SET data = zeroblob(length(data)) WHERE id = 2")
    found = SpillStore(path).load("a")
    assert found.bad_chunks == 1
    assert list(concat(*found.parts).time) == list(range(1, 11)) + list(range(21, 31))


def test_rows_without_a_valid_time_are_never_loaded(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    bad = rows(0, 4)
    bad.time[1], bad.time[2] = 0.0, np.nan
    store.write([("a", bad)])
    found = store.load("a")
    assert found.bad_rows == 2
    assert list(concat(*found.parts).time) == [1.0, 4.0]


def test_replace_and_clear(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    store.write([("a", rows(0, 100)), ("b", rows(0, 5))])
    store.replace("a", rows(90, 10))
    assert list(loaded(store, "a").time) == list(range(91, 101))
    assert store.rows("b") == 5
    store.clear()
    assert store.load("a").parts == [] and store.channels() == []


def test_array_rows_keep_their_layout(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    images = np.arange(3 * 2 * 4, dtype=np.uint16).reshape(3, 2, 4)
    zeros = np.zeros(3, np.int8)
    store.write([("img", Columns(np.arange(1.0, 4.0), images, zeros, zeros))])
    back = loaded(SpillStore(tmp_path / "h.sqlite"), "img")
    assert back.value.dtype == np.uint16 and back.value.shape == (3, 2, 4)
    assert np.array_equal(back.value, images)


def test_an_unreadable_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = SpillStore(path)
    assert (
        store.recovered is not None and "the damaged file is h.sqlite.damaged-" in store.recovered
    )
    assert list(tmp_path.glob("h.sqlite.damaged-*"))
    store.write([("a", rows(0, 2))])
    assert store.rows("a") == 2


def _many_chunks(path: Path, chunks: int, per_chunk: int = 100) -> None:
    store = SpillStore(path)
    for i in range(chunks):
        store.write([("a", rows(i * per_chunk, per_chunk))], {"count": (i + 1) * per_chunk})
    store.close()


def test_a_damaged_page_loses_only_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    _many_chunks(path, 300)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = b"\xa5" * 4096  # one page overwritten
    path.write_bytes(bytes(data))
    store = SpillStore(path)
    assert store.recovered is not None and "was damaged" in store.recovered
    assert list(tmp_path.glob("h.sqlite.damaged-*")), "the damaged file is kept"
    kept = loaded(store, "a")
    assert 0 < store.lost < 300 * 100 and len(kept) + store.lost == 300 * 100
    assert np.all(np.diff(kept.time) > 0), "salvaged rows stay in order"
    assert store.meta()["count"] == 300 * 100
    store.write([("a", rows(10**6, 5))])  # and it records on
    assert store.rows("a") == len(kept) + 5


def test_a_damaged_write_ahead_log_is_reported_with_the_rows_lost(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    script = (
        "import os, sys, numpy as np\n"
        "from epics_collector.storage import SpillStore, Columns\n"
        "s = SpillStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "z = np.zeros(50, np.int8)\n"
        "for i in range(20):\n"
        "    s.write([('a', Columns(1.7e9 + i * 50 + np.arange(50.0), np.ones(50), z, z))])\n"
        "os._exit(0)\n"  # like a kill -9: no close, no checkpoint
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    assert len(data) > 4096, "nothing in the log: the test proves nothing"
    middle = len(data) // 2
    data[middle : middle + 20] = bytes(b ^ 0xFF for b in data[middle : middle + 20])
    wal.write_bytes(bytes(data))
    store = SpillStore(path)
    assert store.recovered is not None and "write-ahead log" in store.recovered
    held = store.rows("a")
    assert held < 1000 and store.lost == 1000 - held


def test_a_deleted_database_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store = SpillStore(path)
    assert store.moved() is None
    for name in ("h.sqlite", "h.sqlite-wal", "h.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    assert store.moved() == "deleted"
    path.write_bytes(b"")
    assert store.moved() == "replaced by another file"


def test_an_open_that_fails_for_a_reason_other_than_damage_moves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from epics_collector.storage import _spill

    monkeypatch.setattr(_spill, "BUSY_SECONDS", 0.2)  # (the lock is held all along)
    path = tmp_path / "h.sqlite"
    _many_chunks(path, 3)
    before = path.read_bytes()
    locker = sqlite3.connect(path)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")  # another process holds it: SQLITE_BUSY at open
    try:
        with pytest.raises(StoreUnavailableError):
            SpillStore(path)
    finally:
        locker.rollback()
        locker.close()
    assert path.read_bytes() == before and not list(tmp_path.glob("*.damaged-*"))
    found = read_only(path)
    parts, meta = found.parts, found.meta
    assert sum(len(p) for p in parts["a"]) == 300 and meta["count"] == 300


def test_exact_timestamps_survive_the_store_and_older_chunks_still_load(tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "h.sqlite")
    ns = np.array([1_796_000_000_123_456_789, 1_796_000_001_000_000_001], np.int64)
    exact = Columns(ns * 1e-9, np.array([1.0, 2.0]), np.zeros(2, np.int8), np.zeros(2, np.int8), ns)
    text = Columns(
        ns * 1e-9, np.array(["a", "b"], object), np.zeros(2, np.int8), np.zeros(2, np.int8), ns
    )
    store.write([("a", exact), ("t", text)])
    for name in ("a", "t"):
        loaded = concat(*store.load(name).parts)
        assert list(loaded.stamps()) == list(ns), name
    ring = Ring(10)
    ring.extend(concat(*store.load("a").parts))  # as a restart restores them
    assert list(ring.columns().stamps()) == list(ns)
    # a chunk written before exact stamps were kept: loads, its stamps from its times
    old = np.zeros(1, array_record(np.dtype("<f8"), ()))
    old["time"], old["value"] = 1_796_000_002.5, 3.0
    layout = '{"dtype": "<f8", "shape": []}'
    assert list(unpack(layout, old.tobytes()).stamps()) == [1_796_000_002_500_000_000]


def test_merging_the_flushes_chunks_rewrites_each_row_a_few_times_not_once_per_merge(
    tmp_path: Path,
) -> None:
    """A 1 Hz channel flushed every 0.5 s writes a chunk a row; merges every 30 s keep
    its chunks few, and (chunks growing by doubling) rewrite each row a few times."""
    store = SpillStore(tmp_path / "h.sqlite")
    rewritten, written = 0, 0
    for flush in range(3_000):
        store.write([("a", rows(flush, 1))])
        written += 1
        if flush % 60 == 59:
            before = {c.id: c.rows for c in store.chunks("a")}
            store.merge_tail("a", 1024)
            after = {c.id for c in store.chunks("a")}
            rewritten += sum(n for i, n in before.items() if i not in after)
    assert list(loaded(store, "a").time) == list(range(1, 3_001))  # every row, in order
    assert len(store.chunks("a")) < 3_000 / 1024 + 60  # (the frozen ones, and one run)
    assert rewritten / written < 6, f"each row rewritten {rewritten / written:.1f} times"
