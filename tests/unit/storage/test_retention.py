"""The retention engine on real spill files: reduce, delete, dry run, kill -9, reads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from epics_collector.storage import (
    SPILL,
    Columns,
    Query,
    RetentionChannel,
    RetentionEngine,
    RetentionRule,
    SpillStore,
    StoredRecording,
    _retention,
    byte_count,
    seconds,
)

DAY = 86400.0
START = 1.7e9  # (whole minutes: 1.7e9 / 60 is whole)
NOW = START + 10 * DAY
RULE = {"match": "*", "raw": "3d", "reduce": "mean_60", "keep": "8d"}


def _rows(seed: int = 1) -> Columns:
    """10 days of a number every 7 s, with gaps (NaN) and alarms."""
    rng = np.random.default_rng(seed)
    t = START + np.arange(0, 10 * DAY, 7.0) + rng.uniform(0, 0.5)
    values = rng.normal(20, 2, len(t))
    values[rng.random(len(t)) < 0.01] = np.nan
    severity = (rng.random(len(t)) < 0.05).astype(np.int8) * rng.integers(1, 3, len(t)).astype(
        np.int8
    )
    status = severity * 3
    return Columns(t, values, severity, status.astype(np.int8))


def _store(directory: Path, rows: Columns, chunk: int = 997) -> None:
    store = SpillStore(directory / SPILL)
    for lo in range(0, len(rows), chunk):
        store.write([("a", rows.take(slice(lo, lo + chunk))), ("s", _strings(rows, lo, chunk))])
    store.close()


def _strings(rows: Columns, lo: int, n: int) -> Columns:
    part = rows.take(slice(lo, lo + n))
    text = np.array([f"v{i}" for i in range(lo, lo + len(part))], object)
    return Columns(part.time, text, part.severity, part.status)


def _expected(rows: Columns, delete_before: float, reduce_before: float) -> Columns:
    """mean_60 computed by hand (a dict of bins) below reduce_before, raw above."""
    kept = rows.select(rows.time >= delete_before)
    old = kept.select(kept.time < reduce_before)
    bins: dict[int, list[int]] = {}
    for k, t in enumerate(old.time):
        bins.setdefault(int(t) // 60, []).append(k)
    times, values, sev, stat = [], [], [], []
    for b, members in sorted(bins.items()):
        v = old.value[members]
        v = v[np.isfinite(v)]
        times.append(b * 60 + 30.0)
        values.append(float(np.mean(v)) if len(v) else np.nan)
        worst = max(members, key=lambda k: (old.severity[k], -k))
        sev.append(old.severity[worst])
        stat.append(old.status[worst])
    new = kept.select(kept.time >= reduce_before)
    return Columns(
        np.r_[times, new.time],
        np.r_[values, new.value],
        np.r_[np.array(sev, np.int8), new.severity],
        np.r_[np.array(stat, np.int8), new.status],
    )


CHANNELS = [RetentionChannel("a", "LAB:T", "number"), RetentionChannel("s", "LAB:S", "string")]


def _apply(directory: Path, dry_run: bool = False) -> _retention.Run:
    store = SpillStore(directory / SPILL)
    try:
        engine = RetentionEngine([RetentionRule.model_validate(RULE)])
        return engine.apply(store, directory.name, "rec", CHANNELS, NOW, dry_run=dry_run)
    finally:
        store.close()


def _read(directory: Path, alias: str = "a") -> dict[str, np.ndarray]:
    stored = StoredRecording(directory)
    return stored.query(alias, Query(0.0, NOW + 1, 100_000, "raw"))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_retention, "BATCH", 5000)  # many transactions


def test_raw_reduced_deleted_as_the_policy_says(tmp_path: Path, small_batches: None) -> None:
    rows = _rows()
    _store(tmp_path, rows)
    run = _apply(tmp_path)
    reduce_before = np.floor((NOW - 3 * DAY) / 60) * 60
    expected = _expected(rows, NOW - 8 * DAY, reduce_before)
    got = _read(tmp_path)
    assert np.array_equal(got["time"], expected.time)
    assert np.allclose(got["value"], expected.value, equal_nan=True, rtol=1e-12)
    assert np.array_equal(got["severity"], expected.severity)
    assert np.array_equal(got["status"], expected.status)
    assert list(got["reduced"]) == ["mean_60"]  # the answer says so
    # strings are not reduced, only deleted
    strings = _read(tmp_path, "s")
    assert np.array_equal(strings["time"], rows.time[rows.time >= NOW - 8 * DAY])
    assert "reduced" not in strings
    # what the run said it did
    deleted = int((rows.time < NOW - 8 * DAY).sum())
    assert run.rows_deleted == 2 * deleted
    assert run.rows_reduced == int(
        ((rows.time >= NOW - 8 * DAY) & (rows.time < reduce_before)).sum()
    )
    assert run.freed > 0 and run.file_freed > 0
    # a raw read that starts in the raw range does not say reduced
    assert "reduced" not in StoredRecording(tmp_path).query(
        "a", Query(reduce_before + 1, NOW, 100_000, "raw")
    )
    # once applied, applying again at the same time does nothing
    assert _apply(tmp_path).steps == []


def test_a_dry_run_writes_nothing_and_says_what_the_run_then_does(
    tmp_path: Path, small_batches: None
) -> None:
    _store(tmp_path, _rows())
    dry = _apply(tmp_path, dry_run=True)
    unchanged = StoredRecording(tmp_path)
    assert unchanged.rows == 2 * len(_rows()) and not unchanged.reduced  # nothing written
    real = _apply(tmp_path)
    assert [s.text() for s in dry.steps] == [s.text() for s in real.steps]
    assert len(dry.steps) == 3  # delete a, reduce a, delete s


def test_a_kill_during_reduction_leaves_every_range_raw_or_reduced(tmp_path: Path) -> None:
    rows = _rows()
    _store(tmp_path, rows)
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from epics_collector.storage import SPILL, RetentionEngine, RetentionRule, SpillStore
        from epics_collector.storage import _retention
        from tests.unit.storage.test_retention import CHANNELS, NOW, RULE
        _retention.BATCH = 3000
        done = []
        def pace(seconds):
            done.append(seconds)
            if len(done) == 15:  # in the middle of the reduction (9 deletes first)
                os.kill(os.getpid(), signal.SIGKILL)
        store = SpillStore(Path({str(tmp_path)!r}) / SPILL)
        engine = RetentionEngine([RetentionRule.model_validate(RULE)], pace)
        engine.apply(store, "x", "rec", CHANNELS, NOW)
        """
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[3], check=False
    )
    assert killed.returncode == -9
    stored = StoredRecording(tmp_path)
    operator, until = stored.reduced["a"]
    reduce_before = np.floor((NOW - 3 * DAY) / 60) * 60
    assert operator == "mean_60" and NOW - 8 * DAY < until < reduce_before  # half way
    got = stored.query("a", Query(0.0, NOW + 1, 100_000, "raw"))
    partial = _expected(rows, NOW - 8 * DAY, until)  # reduced below until, raw above
    assert np.array_equal(got["time"], partial.time)
    assert np.allclose(got["value"], partial.value, equal_nan=True, rtol=1e-12)
    # the next run finishes the work: as if never interrupted
    _apply(tmp_path)
    whole = _expected(rows, NOW - 8 * DAY, reduce_before)
    got = _read(tmp_path)
    assert np.array_equal(got["time"], whole.time)
    assert np.allclose(got["value"], whole.value, equal_nan=True, rtol=1e-12)


def test_every_operator_reduces_as_computed_by_hand(tmp_path: Path) -> None:
    rows = _rows(2)
    for name, compute in [
        ("min", np.min),
        ("max", np.max),
        ("median", np.median),
    ]:
        directory = tmp_path / name
        _store(directory, rows)
        store = SpillStore(directory / SPILL)
        rule = RetentionRule(raw=DAY, reduce=f"{name}_600")
        RetentionEngine([rule]).apply(store, "x", "rec", CHANNELS[:1], NOW)
        store.close()
        got = _read(directory)
        cut = np.floor((NOW - DAY) / 600) * 600
        old = rows.select(rows.time < cut)
        bins = np.floor(old.time).astype(int) // 600
        for k, b in enumerate(np.unique(bins)[:50]):
            v = old.value[bins == b]
            v = v[np.isfinite(v)]
            assert got["time"][k] == b * 600 + 300
            assert got["value"][k] == pytest.approx(compute(v)), name
    for name, pick in [("firstSample", 0), ("lastSample", -1)]:
        directory = tmp_path / name
        _store(directory, rows)
        store = SpillStore(directory / SPILL)
        RetentionEngine([RetentionRule(raw=DAY, reduce=f"{name}_600")]).apply(
            store, "x", "rec", CHANNELS[:1], NOW
        )
        store.close()
        got = _read(directory)
        first_bin = rows.time[np.floor(rows.time).astype(int) // 600 == int(START) // 600]
        assert got["time"][0] == first_bin[pick]  # a row as it was recorded


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        ({"raw": "3d", "reduce": "mean_60", "keep": "1d"}, "", "must be longer than raw"),
        ({"raw": "3d", "reduce": "std_60"}, "", "cannot reduce stored rows"),
        ({"reduce": "mean_60"}, "", "reduce needs raw"),
        ({"raw": "3 fortnights"}, "raw", "is not a duration"),
        ({"keep": -5}, "keep", "more than 0"),
        ({"match": "*", "rows": 5}, "rows", "Extra inputs"),
    ],
)
def test_a_policy_that_cannot_work_is_refused_with_the_field_named(
    rule: dict[str, object], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(list[RetentionRule]).validate_python([rule])
    error = raised.value.errors()[0]
    assert error["loc"][:1] == (0,) and (not field or field in error["loc"])
    assert says in str(raised.value)


def test_durations_and_sizes() -> None:
    assert seconds("30d") == 30 * DAY and seconds("2y") == 730 * DAY and seconds(90) == 90
    assert byte_count("200GB") == 200_000_000_000 and byte_count("1MiB") == 1 << 20
    with pytest.raises(ValueError, match="not a size"):
        byte_count("lots")


def test_a_fake_clock_takes_rows_from_raw_to_reduced_to_deleted(tmp_path: Path) -> None:
    rows = _rows(3)
    _store(tmp_path, rows)
    rule = RetentionRule(raw=2 * DAY, reduce="firstSample_600", keep=12 * DAY)
    engine = RetentionEngine([rule])

    def apply(now: float) -> _retention.Run:
        store = SpillStore(tmp_path / SPILL)
        try:
            return engine.apply(store, "x", "rec", CHANNELS[:1], now)
        finally:
            store.close()

    def cut(now: float) -> float:  # where reduced rows end: bins of 600 s, 2 days old
        return float(np.floor((now - 2 * DAY) / 600) * 600)

    def bins_below(t: float, rows: Columns = rows) -> int:  # 10-minute bins with rows
        return len(np.unique(np.floor(rows.time[rows.time < t]) // 600))

    # day 5: rows older than 3 days reduced (each 10 minutes: its first row), none deleted
    run = apply(START + 5 * DAY)
    assert run.rows_deleted == 0 and run.rows_reduced == int(
        (rows.time < cut(START + 5 * DAY)).sum()
    )
    stored = StoredRecording(tmp_path)
    assert stored.reduced["a"] == ("firstSample_600", cut(START + 5 * DAY))
    got = stored.query("a", Query(0.0, NOW, 100_000, "raw"))
    old = got["time"] < cut(START + 5 * DAY)
    assert int(old.sum()) == bins_below(cut(START + 5 * DAY))
    assert np.all(np.isin(got["time"][old], rows.time))  # rows as recorded
    assert np.array_equal(got["time"][~old], rows.time[rows.time >= cut(START + 5 * DAY)])
    # day 9: reduced up to day 7
    assert apply(START + 9 * DAY).rows_reduced == int(
        ((rows.time >= cut(START + 5 * DAY)) & (rows.time < cut(START + 9 * DAY))).sum()
    )
    # day 14: every row reduced (the rows end at day 10), the first 2 days deleted
    run = apply(START + 14 * DAY)
    got = StoredRecording(tmp_path).query("a", Query(0.0, NOW + 5 * DAY, 100_000, "raw"))
    assert got["time"][0] >= START + 2 * DAY
    # one row a bin, but for the bins whose first row is older than 2 days (deleted)
    assert len(got["time"]) == bins_below(NOW) - bins_below(START + 2 * DAY)
    # day 30: everything is older than keep
    run = apply(START + 30 * DAY)
    assert "a" not in StoredRecording(tmp_path).aliases and run.rows_deleted > 0
