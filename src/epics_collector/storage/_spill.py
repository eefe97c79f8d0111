"""Crash- and disk-safe history on disk: SQLite chunks (decision record 0011).

One database per collector (``<data-dir>/spill/history.sqlite``, WAL mode). Every flush
is one transaction that appends one *chunk* per channel (the rows recorded since the
last flush, packed as a blob) and updates the collector's meta; a kill, a full disk or
any other failed write rolls the whole flush back, so the caller keeps the rows and
writes them again next time. Each chunk carries a CRC32 of its blob: a chunk damaged
on disk is skipped on load and counted, never shifting other rows; rows whose time is
not a positive finite number are never loaded.

The store never gives up intact history:

- An error at open that is not corruption (a full disk, a read-only or locked file) is
  :class:`StoreUnavailableError`: nothing is moved; the caller reads the history
  through :func:`read_only` and opens the store again later.
- Only SQLite's own verdict of corruption (``SQLITE_CORRUPT``/``SQLITE_NOTADB``, or a
  ``quick_check`` that is not ``ok``) moves the file aside, and only after every chunk
  that can still be read was copied into a new database (:attr:`SpillStore.lost`
  counts the rows that could not).
- Each commit is also counted in a small side file (``<name>.commits``); a database
  that opens with fewer rows written than the side file says lost its newest
  transactions (a damaged write-ahead log after a crash): counted in ``lost`` too.
- :meth:`SpillStore.moved` tells whether the file was deleted or replaced since it was
  opened (its inode), so the owner can write what it holds into a new one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from epics_collector.storage._paths import PathError, new_file
from epics_collector.storage._ring import Columns, concat

SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # SQLite's verdicts of a damaged database
WRITTEN = "_written"  # meta key: rows written by every commit so far (see the side file)
HELD = "_held"  # meta key: rows the chunks hold now (what a salvage should find)
REDUCED = "reduced:"  # meta key prefix: {"operator": "mean_60", "until": t} per channel
HIDDEN = (WRITTEN, HELD)  # meta keys of the store's own, not the caller's
RECORD = np.dtype([("time", "<f8"), ("value", "<f8"), ("severity", "i1"), ("status", "i1")])
TEXT = "text"  # the layout of a chunk of string rows (JSON array of [t, v, s, a])
BUSY_SECONDS = 5.0  # how long opening waits for a store another connection has locked
MERGE_LOOKS = 1024  # newest chunks a merge looks at (a merge every 30 s finds ~60 new)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    layout TEXT NOT NULL,
    rows INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    data BLOB NOT NULL,
    first REAL,
    last REAL
);
CREATE INDEX IF NOT EXISTS chunks_channel ON chunks (channel, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# A channel's chunks by time, covering what a read past a ring asks of the index: the
# row's first and last come after its blob, so without it SQLite walks each blob's
# overflow pages to reach them (126 ms for a year's 481 chunks, 1 ms with it).
_TIME_INDEX = "CREATE INDEX IF NOT EXISTS chunks_time ON chunks (channel, first, last, rows)"


_INSERT = (
    "INSERT INTO chunks (channel, layout, rows, crc, data, first, last) VALUES (?,?,?,?,?,?,?)"
)


def _edges(rows: Columns) -> tuple[float, float]:
    """The oldest and newest row times of a chunk (NaN: none).

    A chunk's rows are in time order (a ring's are: the recorder appends in order), so
    they are its ends: a flush of 1000 channels writes chunks of a few rows, where a
    numpy min and max cost a third of the write (measured: 1.63 -> 2.09 us/row).
    """
    if not len(rows):
        return math.nan, math.nan
    return float(rows.time[0]), float(rows.time[-1])


def array_record(dtype: np.dtype, shape: tuple[int, ...], exact: bool = False) -> np.dtype:
    """The record of an array channel: like :data:`RECORD` with a value of ``shape``.

    ``exact``: with the rows' exact timestamps (``ns``, int64), as chunks written since
    they were kept; earlier chunks have none (read back, they come from ``time``).
    """
    fields = [
        ("time", "<f8"),
        ("value", dtype.newbyteorder("<"), shape),
        ("severity", "i1"),
        ("status", "i1"),
    ]
    return np.dtype(fields + [("ns", "<i8")] if exact else fields)


def pack(rows: Columns, reduced: str | None = None) -> tuple[str, bytes]:
    """``(layout, blob)`` of rows: packed records, or JSON for strings.

    ``reduced``: the rows are an operator's bins (``mean_60``), said in the layout.
    """
    stamps = rows.stamps()
    if rows.value.dtype == object:
        items = [
            [float(t), str(v), int(s), int(a), int(n)]
            for t, v, s, a, n in zip(
                rows.time, rows.value, rows.severity, rows.status, stamps, strict=True
            )
        ]
        return TEXT, json.dumps(items).encode()
    value = np.asarray(rows.value)
    record = array_record(value.dtype, value.shape[1:], exact=True)
    data = np.empty(len(rows), record)
    data["time"], data["value"] = rows.time, value
    data["severity"], data["status"], data["ns"] = rows.severity, rows.status, stamps
    layout: dict[str, object] = {
        "dtype": value.dtype.newbyteorder("<").str,
        "shape": value.shape[1:],
        "ns": True,
    }
    if reduced is not None:
        layout["reduced"] = reduced
    return json.dumps(layout), data.tobytes()


def reduced_by(layout: str) -> str | None:
    """The operator a chunk's rows were reduced to (None: raw rows)."""
    if layout == TEXT or '"reduced"' not in layout:
        return None
    return str(json.loads(layout)["reduced"])


def text_rows(items: list[list[object]]) -> Columns:
    """Columns of string rows given as ``[time, value, severity, status(, ns)]`` lists."""
    exact = bool(items) and all(len(item) == 5 for item in items)
    rows = [item[:4] for item in items] if not exact else items
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return Columns(
        np.array(columns[0], np.float64),
        np.array(columns[1], object),
        np.array(columns[2], np.int8),
        np.array(columns[3], np.int8),
        np.array(columns[4], np.int64) if exact else None,
    )


def unpack(layout: str, blob: bytes) -> Columns:
    """The rows of a chunk (raises ValueError if the blob does not fit its layout)."""
    if layout == TEXT:
        return text_rows(json.loads(blob))
    spec = json.loads(layout)
    exact = bool(spec.get("ns"))
    record = array_record(np.dtype(spec["dtype"]), tuple(spec["shape"]), exact)
    if len(blob) % record.itemsize:
        raise ValueError("chunk size is not a whole number of records")
    data = np.frombuffer(blob, record)
    ns = data["ns"] if exact else None
    return Columns(data["time"], data["value"], data["severity"], data["status"], ns)


@dataclass
class Loaded:
    """What :meth:`SpillStore.load` found for one channel."""

    parts: list[Columns]  # one per chunk, oldest first
    bad_chunks: int = 0  # chunks whose checksum or layout did not match: skipped
    bad_rows: int = 0  # rows with a time that is not a positive finite number: skipped


@dataclass(frozen=True)
class ChunkInfo:
    """One chunk of a channel, as the index knows it (no row read)."""

    id: int
    layout: str
    rows: int
    size: int  # bytes of its blob
    first: float  # its oldest row's time (NaN: not known, a chunk of an older version)
    last: float  # its newest row's time

    @property
    def reduced(self) -> str | None:
        """The operator its rows were reduced to (None: raw rows)."""
        return reduced_by(self.layout)


def _real(value: object) -> float:
    return float(cast(float, value)) if value is not None else math.nan


class StoreUnavailableError(OSError):
    """The store cannot be opened for writing now (not corruption): retry later."""


def is_corruption(error: BaseException) -> bool:
    """Whether SQLite itself says the database is damaged (not an I/O problem)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class ChunksGoneError(RuntimeError):
    """A swap found chunks it was to replace already gone (cleared meanwhile): undone."""


class StoreClosedError(RuntimeError):
    """A write to a store its owner closed (the caller keeps the rows)."""


class SpillStore:
    """The chunks of every channel of one collector, and its meta, in one SQLite file.

    Thread-safe: one connection used under a lock (flushes run in an executor). Opening
    raises :class:`StoreUnavailableError` when the file cannot be written now; a
    damaged file is salvaged (see the module text, :attr:`recovered`, :attr:`lost`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = path.with_name(path.name + ".commits")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"{path.parent}: {error.strerror}") from error
        if path.is_symlink():  # SQLite would write through it
            raise PathError(f"{path} is a symbolic link; the spill store must be a file")
        self.recovered: str | None = None  # what was found wrong at open, and what was done
        self.lost = 0  # rows found lost at open (damaged chunks, a damaged log)
        self.closed = False  # after close(): every write refused (StoreClosedError)
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:
            if not is_corruption(error):
                raise StoreUnavailableError(f"{path.name}: {error}") from error
            self._db = self._salvage(str(error))
        self._written = int(cast(int, self._meta_value(WRITTEN, 0)))
        self._check_commits()
        self._identity = _identity(path)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a kill loses nothing committed
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
            if "first" not in columns:  # a store written before chunks kept their times
                db.execute("ALTER TABLE chunks ADD COLUMN first REAL")
                db.execute("ALTER TABLE chunks ADD COLUMN last REAL")
            db.execute(_TIME_INDEX)
            verdict = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            if verdict != ["ok"]:
                error = sqlite3.DatabaseError(f"quick_check: {'; '.join(verdict[:3])}")
                error.sqlite_errorcode = SQLITE_CORRUPT  # type: ignore[attr-defined]
                raise error
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _salvage(self, why: str) -> sqlite3.Connection:
        """Copy every readable chunk and meta row into a new database; keep the old file."""
        chunks, meta, lost_chunks, self.lost = _readable(self.path, self._last_id())
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            db = self._open()
        except (OSError, sqlite3.DatabaseError) as error:
            raise StoreUnavailableError(
                f"{self.path.name} is damaged ({why}) and no new database can be written ({error})"
            ) from error
        with _Transaction(db):
            for chunk in chunks:
                db.execute(_INSERT, (*chunk, *_edges(unpack(chunk[1], chunk[4]))))
            for key, value in meta:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        rows = sum(chunk[2] for chunk in chunks)
        held = dict(meta).get(HELD)
        if held is not None:  # exact: what the chunks held at the last commit
            self.lost = max(self.lost, int(json.loads(held)) - rows)
        with _Transaction(db):
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (HELD, str(rows)))
        self.recovered = (
            f"{self.path.name} was damaged ({why}): kept {len(chunks)} chunks ({rows} rows), "
            f"lost {lost_chunks} chunks ({self.lost} rows); the damaged file is {aside.name}"
        )
        return db

    def _last_id(self) -> int:
        """The newest chunk id the side file knows (0: none)."""
        try:
            return int(json.loads(self.commits.read_text()).get("last_id", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    def _check_commits(self) -> None:
        """Rows the side file saw committed but the database does not hold: lost."""
        try:
            noted = int(json.loads(self.commits.read_text()).get("written", 0))
        except (OSError, ValueError, AttributeError):
            return
        missing = noted - self._written
        if missing > 0:
            self.lost += missing
            text = (
                f"{self.path.name} lacks its newest {missing} rows (its write-ahead log "
                "was damaged, after a crash?): they are lost"
            )
            self.recovered = f"{self.recovered}; {text}" if self.recovered else text
            self._note_commits()  # said once

    def _note_commits(self) -> None:
        """Count a commit in the side file (no link followed; a failure is no loss)."""
        with contextlib.suppress(OSError, PathError, sqlite3.DatabaseError):
            (last_id,) = self._db.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()
            data = {"written": self._written, "last_id": int(last_id)}
            with new_file(self.commits) as handle, open(handle, "w") as file:
                json.dump(data, file)

    def _meta_value(self, key: str, default: object) -> object:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if found is None else json.loads(found[0])

    def moved(self) -> str | None:
        """Why the file on disk is no longer the one open (deleted, replaced), if it is not."""
        now = _identity(self.path)
        if now == self._identity:
            return None
        return "deleted" if now is None else "replaced by another file"

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL into it); later writes refused."""
        with self._lock:
            self.closed = True
            self._db.close()

    # reading ---------------------------------------------------------------------------

    def meta(self) -> dict[str, object]:
        """The meta saved by the last successful :meth:`write`."""
        with self._lock:
            found = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {
            key: json.loads(value)
            for key, value in found
            if key not in HIDDEN and not key.startswith(REDUCED)
        }

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

    def oldest(self, channel: str) -> float:
        """The time of a channel's oldest row on disk (inf: none)."""
        with self._lock:
            (first,) = self._db.execute(
                "SELECT min(first) FROM chunks WHERE channel = ?", (channel,)
            ).fetchone()
            if (
                first is None
                and self._db.execute(
                    "SELECT 1 FROM chunks WHERE channel = ? AND first IS NULL LIMIT 1", (channel,)
                ).fetchone()
            ):  # chunks of an older version: their rows say
                parts = self._unpacked(
                    self._db.execute(
                        "SELECT layout, rows, crc, data FROM chunks WHERE channel = ?", (channel,)
                    ).fetchall()
                ).parts
                return min((float(p.time.min()) for p in parts if len(p)), default=math.inf)
        return math.inf if first is None else float(first)

    def reductions(self) -> dict[str, tuple[str, float]]:
        """Alias -> (operator, until) of every channel the policy reduced."""
        with self._lock:
            found = self._db.execute(
                "SELECT key, value FROM meta WHERE key LIKE ?", (REDUCED + "%",)
            ).fetchall()
        reduced = {}
        for key, value in found:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                item = json.loads(value)
                reduced[key[len(REDUCED) :]] = (str(item["operator"]), float(item["until"]))
        return reduced

    def load(self, channel: str) -> Loaded:
        """Every good row of a channel, oldest first; damaged chunks skipped and counted."""
        with self._lock:
            found = self._db.execute(
                "SELECT layout, rows, crc, data FROM chunks WHERE channel = ? ORDER BY id",
                (channel,),
            ).fetchall()
        return self._unpacked(found)

    def tail(self, channel: str, rows: int) -> Loaded:
        """A channel's newest ``rows`` good rows (at least), oldest first.

        Reads chunks from the newest back until they hold ``rows``: a restart of a
        collector whose store holds months reads what its ring keeps, not the months.
        """
        found: list[tuple[str, int, int, bytes]] = []
        held = 0
        with self._lock:
            cursor = self._db.execute(
                "SELECT layout, rows, crc, data FROM chunks WHERE channel = ? "
                "ORDER BY coalesce(last, 1e300) DESC, id DESC",
                (channel,),
            )
            for item in cursor:
                found.append(item)
                held += int(item[1])
                if held >= rows:
                    break
        found.reverse()
        return self._unpacked(found)

    def _unpacked(self, found: list[tuple[str, int, int, bytes]]) -> Loaded:
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
        packed = [
            (channel, *pack(rows), len(rows), *_edges(rows))
            for channel, rows in chunks
            if len(rows)
        ]
        total = sum(item[3] for item in packed)
        with self._lock:
            if self.closed:  # a flush after its owner stopped: a bug, said, nothing lost
                raise StoreClosedError(f"{self.path.name} is closed: a write came after stop")
            with self._transaction():
                for channel, layout, blob, count, first, last in packed:
                    self._db.execute(
                        _INSERT, (channel, layout, count, zlib.crc32(blob), blob, first, last)
                    )
                items = {**(meta or {}), WRITTEN: self._written + total}
                if total:
                    items[HELD] = self._held() + total
                for key, value in items.items():
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (key, json.dumps(value)),
                    )
            self._written += total
            if total:
                self._note_commits()
        return total

    def replace(self, channel: str, rows: Columns) -> None:
        """Replace every chunk of a channel by ``rows`` (compaction), atomically."""
        layout, blob = pack(rows)
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunks WHERE channel = ?", (channel,))
            if len(rows):
                self._db.execute(
                    _INSERT, (channel, layout, len(rows), zlib.crc32(blob), blob, *_edges(rows))
                )
            self._set_held()

    def chunks(self, channel: str) -> list[ChunkInfo]:
        """The chunks of a channel, by id (none read)."""
        with self._lock:
            found = self._db.execute(
                "SELECT id, layout, rows, length(data), first, last FROM chunks "
                "WHERE channel = ? ORDER BY id",
                (channel,),
            ).fetchall()
        return [
            ChunkInfo(int(i), str(layout), int(n), int(size), _real(a), _real(b))
            for i, layout, n, size, a, b in found
        ]

    def chunk(self, chunk_id: int) -> Columns | None:
        """The rows of one chunk (None: gone, or damaged: such a chunk is left alone)."""
        with self._lock:
            return read_chunk(self._db, chunk_id)

    def swap(
        self,
        channel: str,
        remove: list[int],
        add: list[tuple[Columns, str | None]],
        meta: dict[str, object],
    ) -> list[ChunkInfo]:
        """Replace chunks ``remove`` by ``add`` (rows, reduced by) and set ``meta``, atomically.

        The chunks added, as the index knows them. A failed write (a full disk) changes
        nothing, and so does a swap whose chunks to remove are no longer all there
        (:class:`ChunksGoneError`: a Clear or a purge came between its read and its write).
        """
        packed = [
            (len(rows), *pack(rows, reduced), *_edges(rows)) for rows, reduced in add if len(rows)
        ]
        added: list[ChunkInfo] = []
        with self._lock:
            if self.closed:
                raise StoreClosedError(f"{self.path.name} is closed")
            with self._transaction():
                deleted = self._db.executemany(
                    "DELETE FROM chunks WHERE id = ? AND channel = ?",
                    [(i, channel) for i in remove],
                ).rowcount
                if deleted != len(remove):  # a Clear or a purge came first: nothing changes
                    raise ChunksGoneError(
                        f"{len(remove) - deleted} of the chunks to replace were gone"
                    )
                for count, layout, blob, first, last in packed:
                    cursor = self._db.execute(
                        _INSERT, (channel, layout, count, zlib.crc32(blob), blob, first, last)
                    )
                    chunk = int(cast(int, cursor.lastrowid))
                    added.append(ChunkInfo(chunk, layout, count, len(blob), first, last))
                for key, value in meta.items():
                    self._db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                        (key, json.dumps(value)),
                    )
                self._set_held()
            self._note_commits()
        return added

    def merge_tail(self, channel: str, smaller_than: int, at_least: int = 16) -> int:
        """Merge a channel's newest small raw chunks into one; how many (0: none merged).

        From the newest back, a chunk joins while it holds no more rows than the newer
        ones taken together (and fewer than ``smaller_than``, and raw): chunks grow by
        doubling, so a row is rewritten a few times at most, never once per merge. At
        least ``at_least`` chunks are merged at once. The chunks merged are the newest,
        so the merged one covers no other chunk's times. One transaction.
        """
        tail, total = [], 0
        with self._lock:
            newest = self._db.execute(
                "SELECT id, layout, rows FROM chunks WHERE channel = ? ORDER BY id DESC LIMIT ?",
                (channel, MERGE_LOOKS),
            ).fetchall()
        for chunk_id, layout, rows in newest:
            if rows >= smaller_than or reduced_by(layout) is not None:
                break
            if len(tail) >= 2 and rows > total:
                break
            tail.append(int(chunk_id))
            total += int(rows)
        if len(tail) < at_least:
            return 0
        tail.reverse()
        parts = [self.chunk(i) for i in tail]
        if any(p is None for p in parts):
            return 0  # a damaged chunk is left as it is
        merged = concat(*[p for p in parts if p is not None])
        if np.any(np.diff(merged.time) < 0):
            return 0  # (rows out of order: an earlier version's; left as they are)
        self.swap(channel, tail, [(merged, None)], {})
        return len(tail)

    def compact_file(self, sparse: float = 0.25) -> int:
        """VACUUM when at least ``sparse`` of the file is free pages; the bytes it freed."""
        with self._lock:
            (pages,) = self._db.execute("PRAGMA page_count").fetchone()
            (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
            if not pages or free < sparse * pages:
                return 0
            before = self.path.stat().st_size
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return max(0, before - self.path.stat().st_size)

    def clear(self) -> None:
        """Remove every row (Clear); the meta stays."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunks")
            self._set_held()

    def _held(self) -> int:
        return int(cast(int, self._meta_value(HELD, 0)))

    def _set_held(self) -> None:
        """Count the rows held again (inside a transaction that changed them)."""
        (held,) = self._db.execute("SELECT coalesce(sum(rows), 0) FROM chunks").fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (HELD, str(int(held)))
        )

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


def read_chunk(db: sqlite3.Connection, chunk_id: int) -> Columns | None:
    """The rows of chunk ``chunk_id`` of ``db`` (None: gone, or damaged)."""
    found = db.execute(
        "SELECT layout, rows, crc, data FROM chunks WHERE id = ?", (chunk_id,)
    ).fetchone()
    if found is None or zlib.crc32(found[3]) != found[2]:
        return None
    try:
        rows = unpack(found[0], found[3])
    except ValueError:
        return None
    return rows if len(rows) == found[1] else None


def _readable(
    path: Path, last_id: int
) -> tuple[list[tuple[str, str, int, int, bytes]], list[tuple[str, str]], int, int]:
    """What can still be read of a damaged database, one chunk (by id) at a time.

    Returns the good chunks (oldest first), the meta rows, and how many chunks and rows
    could not be read or failed their checksum (rows of a chunk whose data is lost
    are counted when its row count can still be read).
    """
    chunks: list[tuple[str, str, int, int, bytes]] = []
    meta: list[tuple[str, str]] = []
    lost_chunks = lost_rows = 0
    try:
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS, check_same_thread=False
        )
    except sqlite3.DatabaseError:
        return chunks, meta, lost_chunks, lost_rows
    try:
        with contextlib.suppress(sqlite3.DatabaseError):
            found = db.execute("SELECT max(id) FROM chunks").fetchone()[0]
            last_id = max(last_id, int(found or 0))
        for chunk_id in range(1, last_id + 1):
            try:
                row = db.execute(
                    "SELECT channel, layout, rows, crc, data FROM chunks WHERE id = ?",
                    (chunk_id,),
                ).fetchone()
            except sqlite3.DatabaseError:
                row = None
                lost_chunks += 1
                with contextlib.suppress(sqlite3.DatabaseError, TypeError):
                    lost_rows += int(
                        db.execute("SELECT rows FROM chunks WHERE id = ?", (chunk_id,)).fetchone()[
                            0
                        ]
                    )
            if row is None:
                continue
            if zlib.crc32(row[4]) != row[3]:
                lost_chunks += 1
                lost_rows += int(row[2])
                continue
            chunks.append((row[0], row[1], int(row[2]), int(row[3]), bytes(row[4])))
        with contextlib.suppress(sqlite3.DatabaseError):
            meta = [(k, v) for k, v in db.execute("SELECT key, value FROM meta").fetchall()]
    finally:
        db.close()
    return chunks, meta, lost_chunks, lost_rows


@dataclass
class ReadOnly:
    """What :func:`read_only` found: good rows by channel, the meta, and what was lost."""

    parts: dict[str, list[Columns]]
    meta: dict[str, object]
    lost_chunks: int = 0  # chunks whose checksum or layout did not match: skipped
    lost_rows: int = 0  # rows of those chunks, and rows without a valid time


def read_only(path: Path, channel: str | None = None) -> ReadOnly:
    """Every good row by channel (or of ``channel``), and the meta, read without writing.

    For a store that cannot be opened for writing (a full disk, a read-only folder), and
    for recordings kept after their collector (never modified: no checkpoint, no
    salvage). Damaged chunks are skipped and counted.
    """
    found_parts: dict[str, list[Columns]] = {}
    if not path.is_file() or path.is_symlink():
        return ReadOnly(found_parts, {})
    for mode in ("mode=ro", "immutable=1"):  # immutable: no -shm can be made
        try:
            db = sqlite3.connect(
                f"file:{path}?{mode}", uri=True, timeout=BUSY_SECONDS, check_same_thread=False
            )
            try:
                select = "SELECT channel, layout, rows, crc, data FROM chunks"
                found = (
                    db.execute(f"{select} ORDER BY id").fetchall()
                    if channel is None
                    else db.execute(
                        f"{select} WHERE channel = ? ORDER BY id", (channel,)
                    ).fetchall()
                )
                meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            finally:
                db.close()
        except sqlite3.DatabaseError:
            continue
        answer = ReadOnly(found_parts, meta)
        for name, layout, count, crc, blob in found:
            try:
                if zlib.crc32(blob) != crc or len(rows := unpack(layout, blob)) != count:
                    raise ValueError("checksum or row count mismatch")
            except ValueError:
                answer.lost_chunks += 1
                answer.lost_rows += int(count)
                continue
            good = np.isfinite(rows.time) & (rows.time > 0)
            if not good.all():
                answer.lost_rows += int((~good).sum())
                rows = rows.select(good)
            found_parts.setdefault(name, []).append(rows)
        for key in HIDDEN:
            meta.pop(key, None)
        return answer
    return ReadOnly(found_parts, {})


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so that readers see the old or the new file, never half of one.

    Through a new partial file (synced before the rename), following no symlink.
    """
    with new_file(path, sync=True) as handle, open(handle, "w") as file:
        json.dump(data, file)
