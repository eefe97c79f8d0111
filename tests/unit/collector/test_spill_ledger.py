"""SpillLedger: rows kept until written, given up only beyond capacity, old files imported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from epics_collector.collector import CollectorConfig, Recorder
from epics_collector.collector._spill_ledger import SpillLedger
from epics_collector.core import Update
from epics_collector.storage._spill import RECORD

T = 1.7e9


def recorder(capacity: int = 100) -> Recorder:
    config = CollectorConfig.model_validate({"channels": ["A"], "capacity": capacity})
    rec = Recorder(config, lambda event, channel: None)
    rec.start()
    return rec


def record(rec: Recorder, values: range) -> None:
    for v in values:
        rec.channels[0].on_update(Update(float(v), T + v))


def test_rows_wait_while_the_disk_is_full_and_land_when_it_is_not(tmp_path: Path) -> None:
    rec = recorder(capacity=3000)
    ledger = SpillLedger(tmp_path, rec, capacity=3000)
    ledger.open({"A"})
    assert ledger.store is not None
    db = ledger.store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # full
    record(rec, range(1, 2001))
    outcome = ledger.flush(lambda: {"count": 2000})
    assert outcome.error is not None and "full" in outcome.error
    assert outcome.waiting == 2000 and outcome.given_up == 0
    record(rec, range(2001, 4001))  # 4000 waiting > capacity 3000: the oldest 1000 go
    outcome = ledger.flush(lambda: {"count": 4000})
    assert outcome.waiting == 3000 and outcome.given_up == 1000
    db.execute("PRAGMA max_page_count = 1000000")  # space again
    outcome = ledger.flush(lambda: {"count": 4000})
    assert outcome.error is None and outcome.written == 3000
    rows = np.concatenate([p.value for p in ledger.store.load("A").parts])
    assert list(rows) == [float(v) for v in range(1001, 4001)]
    assert ledger.store.meta() == {"count": 4000}


def test_spill_files_of_an_earlier_version_are_imported_once(tmp_path: Path) -> None:
    data = np.zeros(3, RECORD)
    data["time"], data["value"] = T + np.arange(3), [1.0, 2.0, 3.0]
    (tmp_path / "A.rec").write_bytes(data.tobytes() + b"torn")  # a torn tail is left out
    (tmp_path / "collector.json").write_text(json.dumps({"count": 3, "recording": False}))
    rec = recorder()
    ledger = SpillLedger(tmp_path, rec, capacity=100)
    restored = ledger.open({"A"})
    assert restored.meta["count"] == 3
    assert any("imported 3 rows" in p for p in restored.problems)
    ledger.restore(restored)
    assert list(rec.history.rows(rec.channels[0]).value) == [1.0, 2.0, 3.0]
    assert (tmp_path / "A.rec.imported").exists() and not (tmp_path / "A.rec").exists()
    again = SpillLedger(tmp_path, recorder(), capacity=100).open({"A"})
    assert not any("imported" in p for p in again.problems)


def test_the_store_keeps_every_row_past_the_ring_and_restores_only_the_ring(
    tmp_path: Path,
) -> None:
    rec = recorder(capacity=10)
    ledger = SpillLedger(tmp_path, rec, capacity=10)
    rec.history.read_from(ledger)
    ledger.open({"A"})
    for start in range(1, 51, 10):
        record(rec, range(start, start + 10))
        ledger.flush(dict)
    take = rec.unflushed.take_all
    # rows recorded while the flush runs (after it took its rows): written once, next time
    rec.unflushed.take_all = lambda meta: (take(meta), record(rec, range(51, 54)))[0]  # type: ignore[method-assign]
    ledger.flush(dict)
    rec.unflushed.take_all = take  # type: ignore[method-assign]
    ledger.flush(dict)
    assert ledger.store is not None
    rows = np.concatenate([p.value for p in ledger.store.load("A").parts])
    assert list(rows) == [float(v) for v in range(1, 54)], "a row written twice or lost"
    assert len(rec.channels[0].ring) == 10  # the ring holds the newest, the store all
    assert list(rec.history.rows(rec.channels[0]).value) == [float(v) for v in range(1, 54)]
    assert rec.history.span(rec.channels[0]) == (T + 1, T + 53)
    ledger.close()
    again = recorder(capacity=10)
    reopened = SpillLedger(tmp_path, again, capacity=10)
    again.history.read_from(reopened)
    reopened.restore(reopened.open({"A"}))
    assert list(again.channels[0].ring.columns().value) == [float(v) for v in range(44, 54)]
    assert list(again.history.rows(again.channels[0]).value) == [float(v) for v in range(1, 54)]


def test_a_store_read_without_writing_restores_pushed_channels_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from epics_collector.storage import _spill

    monkeypatch.setattr(_spill, "BUSY_SECONDS", 0.2)  # (the lock is held all along)
    from epics_collector.collector import ChannelConfig
    from epics_collector.storage import Columns, SpillStore

    store = SpillStore(tmp_path / "history.sqlite")
    zeros = np.zeros(3, np.int8)
    rows = Columns(T + np.arange(3.0), np.arange(3.0), zeros, zeros)
    store.write([("A", rows), ("p", rows)], {"pushed": {"p": "number"}})
    store.close()
    locker = sqlite3.connect(tmp_path / "history.sqlite")
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")  # the store cannot be opened for writing now
    try:
        rec = recorder()
        ledger = SpillLedger(tmp_path, rec, capacity=100)
        restored = ledger.open({"A"})
        assert restored.unavailable is not None and restored.meta["pushed"] == {"p": "number"}
        pushed = rec.add_channel(ChannelConfig(pv="push:p", alias="p"))  # as the device does
        ledger.restore(restored)
    finally:
        locker.rollback()
        locker.close()
    assert list(rec.history.rows(rec.channels[0]).value) == [0.0, 1.0, 2.0]
    assert list(rec.history.rows(pushed).value) == [0.0, 1.0, 2.0]
    assert restored.samples == 6


def test_the_counts_on_disk_describe_the_rows_on_disk_while_recording_goes_on(
    tmp_path: Path,
) -> None:
    """Issue 40, slip: the counts were read on the loop before the rows were taken, so a
    flush could write rows its meta did not count."""
    import threading

    rec = recorder(capacity=1_000_000)
    ledger = SpillLedger(tmp_path, rec, capacity=1_000_000)
    ledger.open({"A"})
    assert ledger.store is not None
    done = threading.Event()

    def recording() -> None:
        v = 0
        while not done.is_set():
            v += 1
            rec.channels[0].on_update(Update(float(v), T + v))

    writer = threading.Thread(target=recording)
    writer.start()
    try:
        for _ in range(10):
            outcome = ledger.flush(lambda: {"count": rec.count})
            assert outcome.error is None
            on_disk = sum(len(p.value) for p in ledger.store.load("A").parts)
            assert ledger.store.meta()["count"] == on_disk
    finally:
        done.set()
        writer.join()
