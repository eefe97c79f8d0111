"""The spill store (SQLite chunks) against the raw limit: packed records appended to files.

Measures, in one run (decision record 0011):
1. write cost per row: ``--channels`` x ``--rows`` rows per flush, ``--flushes`` flushes;
   raw: one ``write`` per channel file per flush (the format of decision 0004);
   ours: one SQLite transaction per flush (a chunk per channel, CRC, meta), both as the
   store alone and as a collector flushes (``SpillLedger.flush``: the rows taken from
   the recorder's rings, then written); ``--runs`` interleaved rounds, medians;
2. reload of 1e6 rows of one channel: ``np.fromfile`` vs chunks from SQLite;
3. kill -9 while writing flat out: rows committed before the kill that are missing
   after it (must be 0) and rows torn or garbage on reload (must be 0).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from _common import BenchParser, interleaved, report
from epics_collector.collector import CollectorConfig, Recorder
from epics_collector.collector._spill_ledger import SpillLedger
from epics_collector.core import Update
from epics_collector.storage import Columns, SpillStore, concat
from epics_collector.storage._spill import RECORD


def rows(start: int, n: int) -> Columns:
    t = 1.7e9 + np.arange(start, start + n, dtype=np.float64)
    return Columns(t, t - 1.7e9, np.zeros(n, np.int8), np.zeros(n, np.int8))


def raw_files(directory: Path, channels: int, per_flush: int, flushes: int) -> float:
    """Seconds per row appending packed records, one write per channel per flush."""
    started = time.perf_counter()
    for flush in range(flushes):
        for channel in range(channels):
            chunk = rows(flush * per_flush, per_flush)
            data = np.empty(per_flush, RECORD)
            data["time"], data["value"] = chunk.time, chunk.value
            data["severity"], data["status"] = chunk.severity, chunk.status
            with (directory / f"c{channel}.rec").open("ab") as file:
                file.write(data.tobytes())
    return (time.perf_counter() - started) / (channels * per_flush * flushes)


def sqlite_store(path: Path, channels: int, per_flush: int, flushes: int) -> float:
    """Seconds per row writing one transaction per flush."""
    store = SpillStore(path)
    started = time.perf_counter()
    for flush in range(flushes):
        chunks = [(f"c{c}", rows(flush * per_flush, per_flush)) for c in range(channels)]
        store.write(chunks, {"count": (flush + 1) * per_flush * channels})
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed / (channels * per_flush * flushes)


def collector_flush(directory: Path, channels: int, per_flush: int, flushes: int) -> float:
    """Seconds per row of a collector's flushes (rows recorded beforehand, not timed)."""
    config = CollectorConfig.model_validate(
        {"channels": [f"c{c}" for c in range(channels)], "capacity": per_flush * flushes}
    )
    recorder = Recorder(config, lambda event, channel: None)
    recorder.start()
    ledger = SpillLedger(directory, recorder, capacity=config.capacity)
    ledger.open({ch.alias for ch in recorder.channels})
    elapsed = 0.0
    for flush in range(flushes):
        for n in range(flush * per_flush, (flush + 1) * per_flush):
            update = Update(float(n), 1.7e9 + n)
            for channel in recorder.channels:
                channel.on_update(update)
        started = time.perf_counter()
        outcome = ledger.flush(lambda: {"count": recorder.count})
        elapsed += time.perf_counter() - started
        assert outcome.error is None and outcome.written == channels * per_flush, outcome
    assert ledger.store is not None
    ledger.store.close()
    return elapsed / (channels * per_flush * flushes)


def reload_raw(path: Path, n: int) -> float:
    data = np.empty(n, RECORD)
    data["time"] = 1.7e9 + np.arange(n)
    path.write_bytes(data.tobytes())
    started = time.perf_counter()
    loaded = np.fromfile(path, RECORD)
    assert len(loaded) == n
    return time.perf_counter() - started


def reload_sqlite(path: Path, n: int, per_chunk: int = 500) -> float:
    store = SpillStore(path)
    for start in range(0, n, per_chunk * 100):  # 100 chunks per transaction: quick setup
        store.write(
            [("c", rows(s, per_chunk)) for s in range(start, start + per_chunk * 100, per_chunk)]
        )
    store.close()
    started = time.perf_counter()
    store = SpillStore(path)
    loaded = concat(*store.load("c").parts)
    elapsed = time.perf_counter() - started
    store.close()
    assert len(loaded) == n, len(loaded)
    return elapsed


def _writer(path: str, committed: multiprocessing.Value) -> None:  # type: ignore[type-arg]
    store = SpillStore(Path(path))
    n = 0
    while True:
        store.write([("c", rows(n, 100))])
        n += 100
        committed.value = n


def kill_9(path: Path) -> tuple[int, int]:
    """(rows committed before the kill missing after it, rows with a bad time)."""
    committed = multiprocessing.Value("q", 0)
    process = multiprocessing.get_context("fork").Process(
        target=_writer, args=(str(path), committed)
    )
    process.start()
    while committed.value < 200_000:
        time.sleep(0.01)
    os.kill(process.pid or 0, signal.SIGKILL)
    process.join()
    before = committed.value
    loaded = SpillStore(path).load("c")
    back = concat(*loaded.parts)
    expected = 1.7e9 + np.arange(before)
    missing = int(before - np.isin(expected, back.time).sum())
    return missing, loaded.bad_rows + loaded.bad_chunks * 100


def main() -> None:
    parser = BenchParser(__doc__, runs=5)  # a round takes a second: five, for a tight spread
    parser.add_argument("--channels", type=int, default=1000, quick=200)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--flushes", type=int, default=50, quick=10)
    parser.add_argument("--reload", type=int, default=1_000_000, quick=100_000)
    args = parser.parse_args()
    shape = (args.channels, args.rows, args.flushes)
    with TemporaryDirectory() as tmp:
        root = Path(tmp)

        def raw_round(i: int) -> dict[str, float]:
            (root / f"raw{i}").mkdir()
            return {"us per row": raw_files(root / f"raw{i}", *shape) * 1e6}

        writes = interleaved(
            args.runs,
            raw=raw_round,
            store=lambda i: {"us per row": sqlite_store(root / f"w{i}.sqlite", *shape) * 1e6},
            flush=lambda i: {"us per row": collector_flush(root / f"flush{i}", *shape) * 1e6},
        )
        raw_reload = reload_raw(root / "big.rec", args.reload)
        our_reload = reload_sqlite(root / "big.sqlite", args.reload)
        missing, bad = kill_9(root / "killed.sqlite")
    raw, ours, flush = (writes[k]["us per row"] for k in ("raw", "store", "flush"))
    print(
        f"write: raw files {raw.median:.2f} us/row, SQLite chunks {ours.median:.2f} us/row, "
        f"a collector's flush {flush.median:.2f} us/row "
        f"({args.channels} channels x {args.rows} rows x {args.flushes} flushes)"
    )
    print(
        f"reload of {args.reload:.0e} rows: raw {raw_reload * 1e3:.1f} ms, "
        f"SQLite {our_reload * 1e3:.1f} ms"
    )
    print(f"kill -9 while writing: {missing} committed rows missing, {bad} bad rows loaded")
    report(
        "spill_engine",
        {
            "write_us_per_row": ours,
            "raw_write_us_per_row": raw,
            "write_ratio": raw / ours,
            "collector_flush_us_per_row": flush,
            "collector_flush_ratio_raw_files": raw / flush,
            "reload_ms": our_reload * 1e3,
            "raw_reload_ms": raw_reload * 1e3,
            "kill9_missing_rows": missing,
            "kill9_bad_rows": bad,
        },
        {
            "<=write_us_per_row": 2.0,
            "<=collector_flush_us_per_row": 2.5,
            "<=reload_ms": 1000.0,
            "<=kill9_missing_rows": 0,
            "<=kill9_bad_rows": 0,
        },
        {
            "write_us_per_row": "write_ratio",
            "collector_flush_us_per_row": "collector_flush_ratio_raw_files",
        },
    )


if __name__ == "__main__":
    main()
