"""Crash- and disk-safe history on disk: SQLite chunks (decision record 0011).

One database per collector (``<data-dir>/spill/history.sqlite``, WAL mode). Every flush
is one transaction that appends one *chunk* per channel (the rows recorded since the
last flush, packed as a blob) and updates the collector's meta; a kill, a full disk or
any other failed write rolls the whole flush back, so the caller keeps the rows and
writes them again next time. Each chunk carries a CRC32 of its blob: a chunk damaged
on disk is skipped on load and counted, never shifting other rows; rows whose time is
not a positive finite number are never loaded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epics_collector.storage._paths import PathError, new_file
from epics_collector.storage._ring import Columns

RECORD = np.dtype([("time", "<f8"), ("value", "<f8"), ("severity", "i1"), ("status", "i1")])
TEXT = "text"  # the layout of a chunk of string rows (JSON array of [t, v, s, a])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    layout TEXT NOT NULL,
    rows INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_channel ON chunks (channel, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def array_record(dtype: np.dtype, shape: tuple[int, ...]) -> np.dtype:
    """The record of an array channel: like :data:`RECORD` with a value of ``shape``."""
    return np.dtype(
        [
            ("time", "<f8"),
            ("value", dtype.newbyteorder("<"), shape),
            ("severity", "i1"),
            ("status", "i1"),
        ]
    )


def pack(rows: Columns) -> tuple[str, bytes]:
    """``(layout, blob)`` of rows: packed records, or JSON for strings."""
    if rows.value.dtype == object:
        items = [
            [float(t), str(v), int(s), int(a)]
            for t, v, s, a in zip(rows.time, rows.value, rows.severity, rows.status, strict=True)
        ]
        return TEXT, json.dumps(items).encode()
    value = np.asarray(rows.value)
    record = array_record(value.dtype, value.shape[1:])
    data = np.empty(len(rows), record)
    data["time"], data["value"] = rows.time, value
    data["severity"], data["status"] = rows.severity, rows.status
    layout = json.dumps({"dtype": value.dtype.newbyteorder("<").str, "shape": value.shape[1:]})
    return layout, data.tobytes()


def text_rows(items: list[list[object]]) -> Columns:
    """Columns of string rows given as ``[time, value, severity, status]`` lists."""
    columns = list(zip(*items, strict=True)) if items else [(), (), (), ()]
    return Columns(
        np.array(columns[0], np.float64),
        np.array(columns[1], object),
        np.array(columns[2], np.int8),
        np.array(columns[3], np.int8),
    )


def unpack(layout: str, blob: bytes) -> Columns:
    """The rows of a chunk (raises ValueError if the blob does not fit its layout)."""
    if layout == TEXT:
        return text_rows(json.loads(blob))
    spec = json.loads(layout)
    record = array_record(np.dtype(spec["dtype"]), tuple(spec["shape"]))
    if len(blob) % record.itemsize:
        raise ValueError("chunk size is not a whole number of records")
    data = np.frombuffer(blob, record)
    return Columns(data["time"], data["value"], data["severity"], data["status"])


@dataclass
class Loaded:
    """What :meth:`SpillStore.load` found for one channel."""

    parts: list[Columns]  # one per chunk, oldest first
    bad_chunks: int = 0  # chunks whose checksum or layout did not match: skipped
    bad_rows: int = 0  # rows with a time that is not a positive finite number: skipped


class SpillStore:
    """The chunks of every channel of one collector, and its meta, in one SQLite file.

    Thread-safe: one connection used under a lock (flushes run in an executor).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # SQLite would write through it
            raise PathError(f"{path} is a symbolic link; the spill store must be a file")
        self.recovered: str | None = None  # set when an unreadable database was moved aside
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:  # not a database, or damaged beyond use
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self.recovered = f"{path.name} unreadable ({error}); moved to {aside.name}"
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a kill loses nothing committed
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM chunks").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL into it)."""
        with self._lock:
            self._db.close()

    # reading ---------------------------------------------------------------------------

    def meta(self) -> dict[str, object]:
        """The meta saved by the last successful :meth:`write`."""
        with self._lock:
            found = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in found}

    def channels(self) -> list[str]:
        """Every channel with rows on disk."""
        with self._lock:
            found = self._db.execute("SELECT DISTINCT channel FROM chunks").fetchall()
        return [name for (name,) in found]

    def rows(self, channel: str) -> int:
        """How many rows a channel has on disk."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT coalesce(sum(rows), 0) FROM chunks WHERE channel = ?", (channel,)
            ).fetchone()
        return int(count)

    def load(self, channel: str) -> Loaded:
        """Every good row of a channel, oldest first; damaged chunks skipped and counted."""
        with self._lock:
            found = self._db.execute(
                "SELECT layout, rows, crc, data FROM chunks WHERE channel = ? ORDER BY id",
                (channel,),
            ).fetchall()
        parts: list[Columns] = []
        bad_chunks = bad_rows = 0
        for layout, count, crc, blob in found:
            try:
                if zlib.crc32(blob) != crc:
                    raise ValueError("checksum mismatch")
                rows = unpack(layout, blob)
                if len(rows) != count:
                    raise ValueError("row count mismatch")
            except ValueError:
                bad_chunks += 1
                continue
            good = np.isfinite(rows.time) & (rows.time > 0)
            if not good.all():
                bad_rows += int((~good).sum())
                rows = rows.select(good)
            parts.append(rows)
        return Loaded(parts, bad_chunks, bad_rows)

    # writing ---------------------------------------------------------------------------

    def write(
        self, chunks: Iterable[tuple[str, Columns]], meta: dict[str, object] | None = None
    ) -> int:
        """Append chunks and replace meta in one transaction; the rows written.

        Raises (``sqlite3.OperationalError`` on a full disk, ...) with nothing written.
        """
        packed = [(channel, *pack(rows), len(rows)) for channel, rows in chunks if len(rows)]
        with self._lock, self._transaction():
            for channel, layout, blob, count in packed:
                self._db.execute(
                    "INSERT INTO chunks (channel, layout, rows, crc, data) VALUES (?,?,?,?,?)",
                    (channel, layout, count, zlib.crc32(blob), blob),
                )
            for key, value in (meta or {}).items():
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )
        return sum(count for *_, count in packed)

    def replace(self, channel: str, rows: Columns) -> None:
        """Replace every chunk of a channel by ``rows`` (compaction), atomically."""
        layout, blob = pack(rows)
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunks WHERE channel = ?", (channel,))
            if len(rows):
                self._db.execute(
                    "INSERT INTO chunks (channel, layout, rows, crc, data) VALUES (?,?,?,?,?)",
                    (channel, layout, len(rows), zlib.crc32(blob), blob),
                )

    def clear(self) -> None:
        """Remove every row (Clear); the meta stays."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunks")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so that readers see the old or the new file, never half of one.

    Through a new partial file (synced before the rename), following no symlink.
    """
    with new_file(path, sync=True) as handle, open(handle, "w") as file:
        json.dump(data, file)
