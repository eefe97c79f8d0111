"""A live channel's rows that left its ring: read back from its spill store.

With ``persist``, a collector's store keeps every row it recorded, and its ring holds
the newest ``capacity`` of them. The rows older than the ring's oldest row (its
*boundary*) are read from the store by :class:`OlderRows`, on a connection of its own
inside one read transaction: a snapshot (WAL readers never wait for the writer, nor it
for them), so a read sees each chunk once, whatever a flush, a merge or the retention
policy does meanwhile.

Positions go on from the ring's: the row just older than the ring's oldest has the
ring's :attr:`~Ring.first_index` minus one, and so on back. Rows leaving the ring for
the store keep their index; the policy deleting the oldest rows changes no other
row's. A reduction replaces rows by fewer, so it changes the *epoch* a page's cursor
carries (:func:`epoch_of`): a reader paging across it is told to read again.

The rows on disk that the ring also holds are left out by their exact stamp: a row
older than the boundary's stamp is the store's alone; of the rows with the boundary's
very stamp (a source that stamps several updates alike), the store's first ones, beyond
those the ring holds.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epics_collector.storage._ring import Columns, Ring, concat
from epics_collector.storage._spill import BUSY_SECONDS, REDUCED, read_chunk

EPOCH_STEP = 1 << 41  # a ring's epoch is 40 random bits and its clears: the until above them
EPOCH_UNTILS = (1 << 21) - 1  # (so the sum stays below 2**63: an int64 column)


@dataclass(frozen=True)
class Boundary:
    """Where a ring begins, taken under its owner's lock (see :func:`boundary_of`)."""

    time: float  # the ring's oldest row's time (inf: an empty ring)
    ns: int  # its exact stamp (2**62: an empty ring)
    ties: int  # ring rows with that very stamp (its oldest ones)
    first_index: int  # the ring's logical index of its oldest row
    epoch: int  # the ring's epoch


def boundary_of(lock: threading.Lock, ring: Ring) -> Boundary:
    """The ring's boundary now."""
    with lock:
        if not len(ring):
            return Boundary(math.inf, 1 << 62, 0, ring.total, ring.epoch)
        first = ring.first_index
        head = ring.copy(first, first + 64)
        stamps = head.stamps()
        ties = int(np.count_nonzero(stamps == stamps[0]))
        if ties == len(head) and len(head) < len(ring):  # (many alike: count them all)
            stamps = ring.copy(first, ring.total).stamps()
            ties = int(np.count_nonzero(stamps == stamps[0]))
        return Boundary(float(head.time[0]), int(stamps[0]), ties, first, ring.epoch)


def epoch_of(ring_epoch: int, until: float) -> int:
    """A page cursor's epoch: the ring's, changed by every reduction of older rows."""
    if until <= 0:
        return ring_epoch
    return ring_epoch + ((zlib.crc32(repr(float(until)).encode()) & EPOCH_UNTILS) + 1) * EPOCH_STEP


@dataclass(frozen=True)
class _Chunk:
    id: int
    rows: int  # rows older than the boundary (all of the chunk's, or fewer for the last)
    first: float
    last: float


class OlderRows:
    """A snapshot of one channel's rows older than ``boundary``, from the store at ``path``.

    Use as a context manager (the read transaction ends at exit). ``count`` rows, oldest
    first at positions ``0 .. count - 1``; :attr:`reduced` is ``(operator, until)`` when
    the policy reduced the channel's oldest rows, :attr:`epoch` the cursor's epoch.
    Damaged chunks are skipped (a restart counted them when it loaded the store).
    """

    def __init__(self, path: Path, channel: str, boundary: Boundary) -> None:
        self.channel, self.boundary = channel, boundary
        self._db: sqlite3.Connection | None = None
        self._chunks: list[_Chunk] = []
        self._starts: list[int] = []  # each chunk's first position
        self._cut: dict[int, Columns] = {}  # chunks the boundary cuts: their older rows
        self._recent: dict[int, Columns | None] = {}  # the chunks read last (a page's)
        self.reduced: tuple[str, float] | None = None
        self.count = 0
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(sqlite3.DatabaseError):
                self._open(path)

    def _open(self, path: Path) -> None:
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS, check_same_thread=False
        )
        self._db = db
        db.execute("BEGIN")  # one snapshot for every read below
        found = db.execute(
            "SELECT value FROM meta WHERE key = ?", (REDUCED + self.channel,)
        ).fetchone()
        if found is not None:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                value = json.loads(found[0])
                self.reduced = (str(value["operator"]), float(value["until"]))
        index = db.execute(
            "SELECT id, rows, first, last FROM chunks WHERE channel = ? "
            "AND (first IS NULL OR first <= ?) ORDER BY first, id",
            (self.channel, self.boundary.time),
        ).fetchall()
        b = self.boundary
        tied: list[tuple[int, Columns]] = []
        for chunk_id, rows, first, last in index:
            if first is not None and last is not None and last < b.time:
                self._chunks.append(_Chunk(int(chunk_id), int(rows), float(first), float(last)))
                continue
            part = self.read_chunk(int(chunk_id))  # the boundary may cut it: look
            if part is None:
                continue
            stamps = part.stamps()
            older = part.select(stamps < b.ns)
            if len(older):
                self._add_cut(int(chunk_id), older)
            if (same := stamps == b.ns).any():
                tied.append((int(chunk_id), part.select(same)))
        spare = sum(len(rows) for _, rows in tied) - b.ties  # the store's alone, first
        for chunk_id, rows in tied:
            if spare <= 0:
                break
            mine = rows.take(slice(0, spare))
            spare -= len(mine)
            self._add_cut(
                chunk_id, concat(self._cut[chunk_id], mine) if chunk_id in self._cut else mine
            )
        self._chunks.sort(key=lambda c: (c.first, c.id))
        position = 0
        for chunk in self._chunks:
            self._starts.append(position)
            position += chunk.rows
        self.count = position

    def _add_cut(self, chunk_id: int, rows: Columns) -> None:
        self._chunks = [c for c in self._chunks if c.id != chunk_id]
        self._cut[chunk_id] = rows
        self._chunks.append(_Chunk(chunk_id, len(rows), float(rows.time[0]), float(rows.time[-1])))

    def __enter__(self) -> OlderRows:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """End the snapshot."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def epoch(self) -> int:
        """The epoch of a cursor into these rows and the ring's after them."""
        return epoch_of(self.boundary.epoch, self.reduced[1] if self.reduced else 0.0)

    @property
    def first_index(self) -> int:
        """The logical index of the oldest row on disk."""
        return self.boundary.first_index - self.count

    @property
    def first_time(self) -> float:
        """The oldest row's time (inf: none)."""
        return self._chunks[0].first if self._chunks else math.inf

    def read_chunk(self, chunk_id: int) -> Columns | None:
        """A chunk's rows (None: damaged or gone); the last two read are kept."""
        if chunk_id in self._cut:
            return self._cut[chunk_id]
        if chunk_id in self._recent:
            return self._recent[chunk_id]
        rows = self._read(chunk_id)
        self._recent[chunk_id] = rows
        while len(self._recent) > 2:
            del self._recent[next(iter(self._recent))]
        return rows

    def _read(self, chunk_id: int) -> Columns | None:
        rows = None if self._db is None else read_chunk(self._db, chunk_id)
        if rows is None:
            return None
        good = np.isfinite(rows.time) & (rows.time > 0)
        return rows if good.all() else rows.select(good)

    def rows(self, start: float, end: float) -> Iterator[Columns]:
        """The rows in [start, end], chunk by chunk, oldest first."""
        at = bisect.bisect_left([c.last for c in self._chunks], start)
        for chunk in self._chunks[at:]:
            if chunk.first > end:
                return
            rows = self.read_chunk(chunk.id)
            if rows is None or not len(rows):
                continue
            lo = int(np.searchsorted(rows.time, start, "left"))
            hi = int(np.searchsorted(rows.time, end, "right"))
            if hi > lo:
                yield rows.take(slice(lo, hi))

    def position_of(self, time: float, side: str = "left") -> int:
        """Where ``time`` would go among the rows (as :meth:`Ring.index_of`, from 0)."""
        if side == "left":
            at = bisect.bisect_left([c.last for c in self._chunks], time)
        else:
            at = bisect.bisect_right([c.last for c in self._chunks], time)
        if at >= len(self._chunks):
            return self.count
        chunk = self._chunks[at]
        rows = self.read_chunk(chunk.id)
        found = 0 if rows is None else int(np.searchsorted(rows.time, time, side))  # type: ignore[call-overload]
        return self._starts[at] + min(found, chunk.rows)

    def from_position(self, position: int, limit: int, end: float) -> Iterator[Columns]:
        """At most ``limit`` rows from ``position`` on, up to time ``end``."""
        at = max(0, bisect.bisect_right(self._starts, position) - 1)
        for chunk, begins in zip(self._chunks[at:], self._starts[at:], strict=True):
            if limit <= 0 or chunk.first > end:
                return
            rows = self.read_chunk(chunk.id)
            if rows is None:
                continue
            rows = rows.take(slice(max(0, position - begins), len(rows)))
            rows = rows.take(slice(0, int(np.searchsorted(rows.time, end, "right"))))
            rows = rows.take(slice(0, limit))
            if len(rows):
                limit -= len(rows)
                yield rows
