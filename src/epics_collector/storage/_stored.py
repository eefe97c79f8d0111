"""Recordings on disk: described, summarised, and read back without writing anything.

A collector that persists keeps its rows in ``<dir>/spill/history.sqlite`` and
describes them in ``<dir>/recording.json`` (:func:`describe`: its prefix, channels and
times). When the collector is destroyed its folder stays as a *retired* recording; its
factory lists it (:func:`summarise`) and serves it (:class:`StoredRecording`) with the
same queries and paging as a live collector. Nothing here writes to a spill file: it is
opened read-only (no checkpoint, no salvage), and a damaged chunk is skipped and
counted, as for a live collector.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.storage._query import Query, query_ring
from epics_collector.storage._ring import Columns, Ring, concat
from epics_collector.storage._spill import REDUCED, read_only, unpack, write_json_atomic

DESCRIPTION = "recording.json"
SPILL = Path("spill") / "history.sqlite"
KINDS = ("number", "string", "waveform", "image")


def describe(directory: Path, **fields: Any) -> dict[str, Any]:
    """Write (merge) ``fields`` into the recording's description; the whole of it.

    ``created`` is kept from an earlier description: a recording is created once.
    """
    found = description(directory)
    merged = {**found, **fields}
    if "created" in found:
        merged["created"] = found["created"]
    write_json_atomic(directory / DESCRIPTION, merged)
    return merged


def description(directory: Path) -> dict[str, Any]:
    """The recording's description ({} if there is none or it cannot be read)."""
    path = directory / DESCRIPTION
    if path.is_symlink() or not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@dataclass
class ChannelSummary:
    """One channel of a recording on disk."""

    alias: str
    pv: str
    kind: str
    rows: int = 0
    first: float = float("nan")  # the oldest row's time (POSIX s)
    last: float = float("nan")  # the newest row's time
    reduced: str = ""  # the operator its oldest rows were reduced to ("" none)
    reduced_until: float = float("nan")  # rows before this are reduced, after it raw

    @property
    def oldest_raw(self) -> float:
        """The time from which rows are raw (NaN: no rows)."""
        if not self.rows:
            return float("nan")
        return max(self.first, self.reduced_until) if self.reduced else self.first


@dataclass
class Summary:
    """A recording on disk: its channels, rows and bytes (cheap: no row is read)."""

    directory: Path
    channels: list[ChannelSummary] = field(default_factory=list)
    bytes: int = 0
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows of every channel."""
        return sum(c.rows for c in self.channels)

    @property
    def first(self) -> float:
        """The oldest row's time over every channel (NaN with none)."""
        times = [c.first for c in self.channels if c.rows]
        return min(times) if times else float("nan")

    @property
    def last(self) -> float:
        """The newest row's time over every channel (NaN with none)."""
        times = [c.last for c in self.channels if c.rows]
        return max(times) if times else float("nan")


def disk_bytes(directory: Path) -> int:
    """Bytes of the files below ``directory`` (links not followed)."""
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def summarise(directory: Path) -> Summary:
    """Channels, rows, first and last times and bytes of the recording in ``directory``.

    Reads the index and the first and last chunk of each channel, read-only.
    """
    found = description(directory)
    summary = Summary(directory, bytes=disk_bytes(directory), description=found)
    described = {str(c.get("alias")): c for c in found.get("channels", []) if isinstance(c, dict)}
    index, reductions = _chunk_index(directory / SPILL)
    for alias, rows, first, last in index:
        channel = described.get(alias, {})
        operator, until = reductions.get(alias, ("", float("nan")))
        summary.channels.append(
            ChannelSummary(
                alias,
                str(channel.get("pv") or alias),
                _kind(channel.get("kind")),
                rows,
                first,
                last,
                operator,
                until,
            )
        )
    for alias, channel in described.items():  # described, but nothing on disk yet
        if all(c.alias != alias for c in summary.channels):
            summary.channels.append(
                ChannelSummary(alias, str(channel.get("pv") or alias), _kind(channel.get("kind")))
            )
    return summary


def _kind(text: object) -> str:
    return str(text) if text in KINDS else "number"


def _chunk_index(
    path: Path,
) -> tuple[list[tuple[str, int, float, float]], dict[str, tuple[str, float]]]:
    """(alias, rows, first time, last time) per channel of a spill file, and reductions.

    Read-only. The reductions: operator and ``until`` per reduced channel (its meta).
    """
    if path.is_symlink() or not path.is_file():
        return [], {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.DatabaseError:
        return [], {}
    found: list[tuple[str, int, float, float]] = []
    reduced: dict[str, tuple[str, float]] = {}
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(chunks)")}
        timed = "min(first), max(last), count(*) - count(first)" if "first" in columns else "0,0,1"
        index = db.execute(
            f"SELECT channel, coalesce(sum(rows), 0), min(id), max(id), {timed} "
            "FROM chunks GROUP BY channel"
        ).fetchall()
        for alias, rows, low, high, first, last, untimed in index:
            if untimed:  # chunks of an older version: the first and last chunks' edges
                first, last = _edge(db, low, 0), _edge(db, high, -1)
            found.append((str(alias), int(rows), float(first), float(last)))
        meta = db.execute("SELECT key, value FROM meta WHERE key LIKE ?", (REDUCED + "%",))
        with contextlib.suppress(ValueError):
            reduced = reductions({key: json.loads(value) for key, value in meta.fetchall()})
    except sqlite3.DatabaseError:
        pass
    finally:
        db.close()
    return found, reduced


def _edge(db: sqlite3.Connection, chunk: int, end: int) -> float:
    """The time of the first (``end`` 0) or last (-1) row of one chunk (NaN if damaged)."""
    row = db.execute("SELECT layout, crc, data FROM chunks WHERE id = ?", (chunk,)).fetchone()
    if row is None or zlib.crc32(row[2]) != row[1]:
        return float("nan")
    try:
        rows = unpack(row[0], row[2])
    except ValueError:
        return float("nan")
    return float(rows.time[end]) if len(rows) else float("nan")


class StoredRecording:
    """A recording on disk, each channel read into a ring on first use, then queried.

    Opening reads the index only (channels, rows, reductions). A channel's rows are read
    whole when it is first queried, so a recording of many channels costs the memory of
    those read. The rings are read-only: queries copy chunk by chunk under :attr:`lock`,
    as a live collector's do, so the same paging (cursors by position) and operators
    apply. ``on_loss(rows)`` is told of rows in damaged chunks when a channel is read.
    """

    def __init__(self, directory: Path, on_loss: Callable[[int], None] | None = None) -> None:
        self.path = directory / SPILL
        self.on_loss = on_loss
        self.lost = 0  # rows of damaged chunks of the channels read: skipped
        index, self.reduced = _chunk_index(self.path)
        #: alias -> rows on disk (the index: nothing read yet)
        self.held = {alias: rows for alias, rows, _, _ in index if rows}
        self._kinds = {
            str(c.get("alias")): _kind(c.get("kind"))
            for c in description(directory).get("channels", [])
            if isinstance(c, dict)
        }
        self.lock = threading.Lock()  # the rings, for each chunk a query copies
        self._loading = threading.Lock()  # one channel read at a time
        self._rings: dict[str, Ring] = {}

    @property
    def aliases(self) -> list[str]:
        """The channels with rows on disk."""
        return list(self.held)

    @property
    def loaded(self) -> list[str]:
        """The channels read into memory so far."""
        return list(self._rings)

    @property
    def rows(self) -> int:
        """Rows on disk, every channel (from the index)."""
        return sum(self.held.values())

    def kind(self, alias: str) -> str:
        """A channel's kind (KeyError: no such channel)."""
        if alias not in self.held:
            raise KeyError(alias)
        return self._kinds.get(alias) or _kind_of(self.ring(alias).columns(1))

    def ring(self, alias: str) -> Ring:
        """A channel's rows, read on first use (KeyError: no such channel)."""
        if alias not in self.held:
            raise KeyError(alias)
        with self._loading:
            found = self._rings.get(alias)
            if found is None:
                read = read_only(self.path, alias)
                parts = read.parts.get(alias, [])
                rows = concat(*parts) if len(parts) > 1 else parts[0] if parts else None
                if rows is not None and len(rows) > 1 and np.any(np.diff(rows.time) < 0):
                    rows = rows.take(np.argsort(rows.time, kind="stable"))
                kind = self._kinds.get(alias) or (_kind_of(rows) if rows is not None else "number")
                found = self._rings[alias] = _ring_of(rows, kind)
                if read.lost_rows:
                    self.lost += read.lost_rows
                    if self.on_loss is not None:
                        self.on_loss(read.lost_rows)
            return found

    def span(self, alias: str) -> tuple[float, float]:
        """The times of a channel's oldest and newest rows ((0, 0) with none)."""
        rows = self.ring(alias).segments()
        if not rows or not len(rows[0]):
            return 0.0, 0.0
        return float(rows[0].time[0]), float(rows[-1].time[-1])

    def query(self, alias: str, query: Query, deadline: float | None = None) -> dict[str, Any]:
        """A query of one channel (KeyError: no such channel)."""
        ring = self.ring(alias)
        answer = query_ring(self.lock, ring, self.kind(alias), query, deadline)
        operator, until = self.reduced.get(alias, ("", 0.0))
        if operator and query.start < until:  # the range holds reduced rows: say so
            answer["reduced"] = np.array([operator])
        return answer


def reductions(meta: dict[str, object]) -> dict[str, tuple[str, float]]:
    """Alias -> (operator, until) of a store's meta (the channels reduced)."""
    found = {}
    for key, value in meta.items():
        if key.startswith(REDUCED) and isinstance(value, dict):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found[key[len(REDUCED) :]] = (str(value["operator"]), float(value["until"]))
    return found


def _kind_of(rows: Columns) -> str:
    if rows.value.dtype == object:
        return "string"
    return "waveform" if rows.value.ndim > 1 else "number"


def _ring_of(rows: Columns | None, kind: str) -> Ring:
    capacity = max(1, len(rows) if rows is not None else 0)
    if kind in ("waveform", "image"):
        ring = Ring(capacity, row_shape=None)
    else:
        ring = Ring(capacity, object if kind == "string" else np.float64)
    if rows is not None:
        ring.extend(rows)
    return ring
