"""Recordings read back from disk: summarised, queried like a live ring, never modified."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from epics_collector.storage import (
    SPILL,
    Columns,
    Query,
    SpillStore,
    StoredRecording,
    describe,
    summarise,
)


def _rows(start: int, n: int) -> Columns:
    t = 1.7e9 + np.arange(start, start + n) * 0.1
    return Columns(
        t, np.arange(start, start + n, dtype=np.float64), np.zeros(n, np.int8), np.zeros(n, np.int8)
    )


def _recording(directory: Path) -> Path:
    path = directory / SPILL
    path.parent.mkdir(parents=True)
    store = SpillStore(path)
    for k in range(4):  # four chunks of 100 rows
        store.write([("a", _rows(100 * k, 100))])
    store.write(
        [
            (
                "s",
                Columns(
                    np.array([1.7e9]),
                    np.array(["text"], object),
                    np.zeros(1, np.int8),
                    np.zeros(1, np.int8),
                ),
            )
        ]
    )
    store.close()
    describe(
        directory,
        prefix="LAB:C:",
        created=1.0,
        channels=[
            {"alias": "a", "pv": "pva://LAB:A", "kind": "number"},
            {"alias": "s", "pv": "LAB:S", "kind": "string"},
        ],
    )
    return path


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_recording_is_summarised_from_its_index(tmp_path: Path) -> None:
    _recording(tmp_path)
    summary = summarise(tmp_path)
    by_alias = {c.alias: c for c in summary.channels}
    assert (by_alias["a"].rows, by_alias["a"].pv, by_alias["a"].kind) == (
        400,
        "pva://LAB:A",
        "number",
    )
    assert by_alias["a"].first == 1.7e9 and by_alias["a"].last == 1.7e9 + 39.9
    assert by_alias["s"].kind == "string" and summary.rows == 401 and summary.bytes > 0


def test_a_stored_recording_pages_and_bins_like_a_live_ring(tmp_path: Path) -> None:
    _recording(tmp_path)
    stored = StoredRecording(tmp_path)
    assert stored.lost == 0 and stored.rows == 401 and stored.loaded == []
    assert stored.aliases == ["a", "s"] and stored.kind("s") == "string"
    values, cursor = [], None
    while True:
        page = stored.query("a", Query(0.0, 2e9, 64, "page", cursor))
        values.append(page["value"])
        if len(page["value"]) < 64:
            break
        cursor = (int(page["epoch"][0]), int(page["index"][-1]))
    np.testing.assert_array_equal(np.concatenate(values), np.arange(400.0))
    assert stored.loaded == ["a"]  # a channel is read when first asked for, alone
    binned = stored.query("a", Query(*stored.span("a"), 4, "mean"))
    np.testing.assert_allclose(binned["value"], [49.5, 149.5, 249.5, 349.5])
    assert list(stored.query("s", Query(0.0, 2e9, 10, "raw"))["value"]) == ["text"]


def test_a_damaged_chunk_is_skipped_and_counted_and_nothing_is_written(tmp_path: Path) -> None:
    path = _recording(tmp_path)
    with sqlite3.connect(path) as db:  # damage the second chunk's data
        db.execute("UPDATE chunks SET data = zeroblob(length(data)) WHERE id = 2")
    db.close()
    before = _digest(tmp_path)
    told: list[int] = []
    stored = StoredRecording(tmp_path, told.append)
    assert stored.lost == 0 and stored.rows == 401  # the index: nothing read yet
    page = stored.query("a", Query(0.0, 2e9, 1000, "page"))
    assert stored.lost == 100 and told == [100]  # said when the channel was read
    np.testing.assert_array_equal(page["value"], np.r_[0:100, 200:400].astype(float))
    summarise(tmp_path)
    after = _digest(tmp_path)  # read-only: no checkpoint, no salvage; SQLite's -shm aside
    assert {k: after[k] for k in before} == before
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
