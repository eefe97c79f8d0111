"""A live collector's history past its ring: rows on disk and in the ring read as one.

With persist the store keeps every row and the ring the newest ``capacity``; every
read (raw, bins, pages, windows) must give each recorded row once, in order, with the
same indices, whatever ring size and page size, and across stamps that tie at the
ring's oldest row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from epics_collector.collector import CollectorConfig, Recorder
from epics_collector.collector._spill_ledger import SpillLedger
from epics_collector.core import Update
from epics_collector.storage import (
    OverwrittenError,
    Query,
    RetentionChannel,
    RetentionEngine,
    RetentionRule,
    StaleReadError,
)

T = 1.7e9


def collector(tmp_path: Path, capacity: int, kind: str = "number") -> tuple[Recorder, SpillLedger]:
    config = CollectorConfig.model_validate(
        {"channels": [{"pv": "A", "kind": kind}], "capacity": capacity, "persist": True}
    )
    rec = Recorder(config, lambda event, channel: None)
    ledger = SpillLedger(tmp_path, rec, capacity=capacity)
    rec.history.read_from(ledger)
    ledger.restore(ledger.open({"A"}))
    rec.start()
    return rec, ledger


def record(rec: Recorder, ledger: SpillLedger, times: np.ndarray, flush_every: int) -> None:
    """One row per time (value = its number), flushed every ``flush_every`` rows."""
    for n, t in enumerate(times):
        rec.channels[0].on_update(Update(float(n), float(t), ns=round(float(t) * 1e9)))
        if (n + 1) % flush_every == 0:
            ledger.flush(dict)
    ledger.flush(dict)


def pages(rec: Recorder, start: float, end: float, points: int) -> list[dict[str, np.ndarray]]:
    channel, found, cursor = rec.channels[0], [], None
    while True:
        page = rec.history.query(channel, Query(start, end, points, "page", cursor))
        if not len(page["time"]):
            return found
        found.append(page)
        cursor = (int(page["epoch"][0]), int(page["index"][-1]))
        if len(page["time"]) < points:
            return found


@pytest.mark.parametrize(
    ("capacity", "points", "flush_every"),
    [(7, 5, 3), (50, 64, 11), (177, 5, 13)],  # 177: the ring begins inside the tie
)
def test_every_row_comes_back_once_across_the_store_and_the_ring(
    tmp_path: Path, capacity: int, points: int, flush_every: int
) -> None:
    times = T + np.arange(300.0)
    times[120:126] = times[120]  # stamps that tie, somewhere a ring boundary passes
    rec, ledger = collector(tmp_path, capacity)
    record(rec, ledger, times, flush_every)
    assert ledger.merge() > 0  # the flushes' small chunks, merged: the same rows
    channel = rec.channels[0]
    assert len(channel.ring) == capacity
    values = np.arange(300.0)
    raw = rec.history.query(channel, Query(T - 1, T + 400, 1000, "raw"))
    assert list(raw["value"]) == list(values)
    paged = pages(rec, T - 1, T + 400, points)
    assert list(np.concatenate([p["value"] for p in paged])) == list(values)
    indices = np.concatenate([p["index"] for p in paged])
    assert list(np.diff(indices)) == [1] * 299, "indices go on across the store and the ring"
    assert indices[-1] == channel.ring.total - 1
    # a page from the middle: the newest row at or before start (the value then)
    middle = rec.history.query(channel, Query(T + 99.5, T + 400, 3, "page"))
    assert list(middle["value"]) == [99.0, 100.0, 101.0]
    # bins over both equal numpy's over every row
    mean = rec.history.query(channel, Query(T, T + 300, 7, "mean"))
    edges = np.linspace(T, T + 300, 8)
    expected = [
        values[(times >= a) & (times < b)].mean()
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    assert np.allclose(mean["value"], expected)
    window, complete = rec.history.window(channel, T + 10, T + 20)
    assert list(window.value) == list(np.arange(10.0, 21.0)) and complete
    for rows in (raw, paged[0]):
        assert "reduced" not in rows


def test_a_reduction_stales_cursors_and_a_deletion_is_said(tmp_path: Path) -> None:
    rec, ledger = collector(tmp_path, capacity=100)
    times = T + np.arange(1000.0)
    record(rec, ledger, times, 50)
    channel = rec.channels[0]
    first = rec.history.query(channel, Query(T, T + 2000, 10, "page"))
    cursor = (int(first["epoch"][0]), int(first["index"][-1]))
    rule = RetentionRule.model_validate({"match": "*", "raw": 100, "reduce": "mean_10"})
    engine = RetentionEngine([rule])
    below = float(times[-100])  # the ring's oldest row
    assert ledger.store is not None
    run = engine.apply(
        ledger.store, "r", "r", [RetentionChannel("A", "A", "number", below)], now=T + 1000
    )
    ledger.after_policy("A", run.rows_reduced - sum(s.written for s in run.steps))
    assert run.rows_reduced == 900  # up to the ring (its rows stay raw), on a bin edge
    with pytest.raises(StaleReadError):
        rec.history.query(channel, Query(T, T + 2000, 10, "page", cursor))
    raw = rec.history.query(channel, Query(T, T + 2000, 1000, "raw"))
    assert len(raw["value"]) == 90 + 100 and raw["reduced"][0] == "mean_10"
    assert list(raw["value"][:2]) == [4.5, 14.5] and list(raw["value"][90:]) == list(
        np.arange(900.0, 1000.0)
    )
    again = rec.history.query(channel, Query(T, T + 2000, 10, "page"))
    cursor = (int(again["epoch"][0]), int(again["index"][-1]))
    keep = RetentionRule.model_validate({"match": "*", "keep": 500})
    RetentionEngine([keep]).apply(
        ledger.store, "r", "r", [RetentionChannel("A", "A", "number", below)], now=T + 1000
    )
    ledger.after_policy("A", 0)
    with pytest.raises(OverwrittenError, match="retention policy"):
        rec.history.query(channel, Query(T, T + 2000, 10, "page", cursor))


def test_strings_and_waveforms_read_past_the_ring(tmp_path: Path) -> None:
    rec, ledger = collector(tmp_path / "s", capacity=5, kind="string")
    for n in range(40):
        rec.channels[0].on_update(Update(f"text {n}", T + n))
        if n % 3 == 0:
            ledger.flush(dict)
    ledger.flush(dict)
    raw = rec.history.query(rec.channels[0], Query(T, T + 100, 100, "raw"))
    assert list(raw["value"]) == [f"text {n}" for n in range(40)]
    rec, ledger = collector(tmp_path / "w", capacity=5, kind="waveform")
    for n in range(40):
        rec.channels[0].on_update(Update(np.full(3, float(n)), T + n))
        if n % 3 == 0:
            ledger.flush(dict)
    ledger.flush(dict)
    rows = rec.history.rows(rec.channels[0])
    assert [float(v[0]) for v in rows.value] == [float(n) for n in range(40)]
    paged = pages(rec, T, T + 100, 6)
    assert sum(len(p["time"]) for p in paged) == 40


def test_rows_all_stamped_alike_come_back_past_the_ring(tmp_path: Path) -> None:
    """A source that stamps every update alike (a record that never sets its time)."""
    rec, ledger = collector(tmp_path, capacity=20)
    record(rec, ledger, np.full(100, T), 7)
    raw = rec.history.query(rec.channels[0], Query(T - 1, T + 1, 1000, "raw"))
    assert list(raw["value"]) == list(np.arange(100.0))
    assert sum(len(p["time"]) for p in pages(rec, T - 1, T + 1, 9)) == 100
