"""A collector's spill ledger (``persist: true``): what is written, kept and lost.

Rows leave the recorder for a *pending* list and leave that list only when the
transaction that writes them has committed; a failed write (a full disk) keeps them
for the next flush. While writes keep failing, at most ``capacity`` rows per channel
wait; older ones are given up, counted and reported, never dropped silently.

The store is opened by :meth:`SpillLedger.open`, never in the constructor. When it
cannot be opened for writing (a full disk, a read-only folder: not corruption), the
history is read without writing and the open is retried at every flush (at most every
``RETRY_OPEN`` seconds) while new rows wait. A store deleted or replaced while running
is noticed at the next flush, and everything the recorder holds is written into a new
one.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector._recorder import Recorder
from epics_collector.storage import (
    Boundary,
    Columns,
    OlderRows,
    SpillStore,
    StoreUnavailableError,
    array_record,
    concat,
    read_only,
    text_rows,
)

DATABASE = "history.sqlite"
RETRY_OPEN = 5.0  # seconds between attempts to open a store that could not be opened
MERGED = 1 << 14  # a channel's newest chunks of fewer rows are merged into one (see merge)


@dataclass
class FlushOutcome:
    """What one flush did (reported by the device on its event loop)."""

    written: int = 0
    error: str | None = None  # the write failed: the rows wait for the next flush
    given_up: int = 0  # rows that had waited too long: not on disk, counted in Dropped
    waiting: int = 0  # rows taken from the recorder and not yet on disk
    reopened: str | None = None  # the store was lost or could not be opened, and now is
    lost: int = 0  # rows on disk that are gone and no longer in memory (counted in Dropped)


@dataclass
class Restored:
    """What a restart found on disk."""

    meta: dict[str, Any]
    samples: int = 0
    problems: list[str] = field(default_factory=list)
    lost: int = 0  # rows the store lost (damage, a damaged log): counted in Dropped
    unavailable: str | None = None  # the store cannot be written now (retried)


class SpillLedger:
    """One collector's spill store, the rows waiting for it, and what it holds.

    The store keeps every row recorded (``capacity`` bounds the ring in memory, not
    the recording: the retention policy and the factory's budget bound that). It is
    also the recorder's history's :class:`~epics_collector.storage.OnDisk`: the rows
    that left the rings are read from it.
    """

    def __init__(self, directory: Path, recorder: Recorder, *, capacity: int) -> None:
        self.directory = directory
        self.recorder = recorder
        self.capacity = capacity
        recorder.unflushed.kept = True  # every row recorded reaches the store
        self.store: SpillStore | None = None  # None until opened (see open, flush)
        self.unavailable: str | None = None  # why the store could not be opened, if not
        self._tried = -float("inf")  # when opening was last tried (monotonic)
        self._loaded = False  # the history on disk is in the recorder
        self._read_only: dict[str, list[Columns]] | None = None  # rows read without writing
        self._waiting: dict[str, list[Columns]] = {}
        self._counts = threading.Lock()  # _on_disk: flushes add, the policy takes away
        self._on_disk: dict[str, int] = {}
        self._oldest: dict[str, float] = {}  # alias -> its oldest row's time on disk
        self._reduced: dict[str, tuple[str, float]] = {}  # alias -> (operator, until)
        self.given_up = 0  # since the store was opened

    @property
    def path(self) -> Path:
        """The database file."""
        return self.directory / DATABASE

    # start ---------------------------------------------------------------------------

    def open(self, aliases: set[str]) -> Restored:
        """Open the store; the meta of the last run (imports old spill files once).

        A store that cannot be written now is read without writing (its rows are
        restored all the same) and ``unavailable`` says why; flushes retry the open.
        """
        restored = Restored({})
        if not self._try_open():
            found = read_only(self.path)
            self._read_only, restored.meta = found.parts, found.meta  # restored by restore()
            restored.unavailable = self.unavailable
            return restored
        assert self.store is not None
        if self.store.recovered:
            restored.problems.append(self.store.recovered)
            restored.lost = self.store.lost
        imported = _import_legacy(self.directory, self.store, aliases)
        if imported:
            restored.problems.append(
                f"imported {imported} rows from spill files of an earlier version"
            )
        restored.meta = self.store.meta()
        return restored

    def _try_open(self) -> bool:
        self._tried = time.monotonic()
        try:
            self.store = SpillStore(self.path)
        except StoreUnavailableError as error:
            self.unavailable = str(error)
            return False
        self.unavailable = None
        return True

    def restore(self, restored: Restored) -> None:
        """Put every channel's rows on disk back into the recorder.

        After :meth:`open` the caller adds the pushed channels its meta names, then
        calls this, so their rows come back too.
        """
        if self._read_only is not None:
            parts, self._read_only = self._read_only, None
            self._restore_parts(parts, restored)
            self._loaded = True
            return
        if self._loaded or self.store is None:
            return
        self._reduced = self.store.reductions()
        for channel in self.recorder.channels:
            loaded = self.store.tail(channel.alias, self.capacity)  # what the ring keeps
            for rows in loaded.parts:
                self.recorder.unflushed.restore(channel, rows)
                restored.samples += len(rows)
            self._on_disk[channel.alias] = self.store.rows(channel.alias)
            self._oldest[channel.alias] = self.store.oldest(channel.alias)
            if loaded.bad_chunks or loaded.bad_rows:
                restored.problems.append(
                    f"{channel.alias}: skipped {loaded.bad_chunks} damaged chunks and "
                    f"{loaded.bad_rows} rows without a valid time"
                )
        self._loaded = True

    def _restore_parts(self, parts: dict[str, list[Columns]], restored: Restored) -> None:
        for channel in self.recorder.channels:
            for rows in parts.get(channel.alias, []):
                self.recorder.unflushed.restore(channel, rows)
                restored.samples += len(rows)

    # flush (executor) ------------------------------------------------------------------

    def flush(self, meta: Callable[[], dict[str, Any]]) -> FlushOutcome:
        """Take what each channel recorded, write it and ``meta()`` in one transaction.

        The rows and ``meta()`` (the counts) are taken under the recorder's lock at one
        moment, so the counts on disk always describe the rows on disk.
        """
        outcome = FlushOutcome()
        failure: Exception | None = None
        try:
            self._ready(outcome)  # before rows are taken: a rewrite writes all it holds
        except Exception as error:
            failure = error
        taken, meta_now = self.recorder.unflushed.take_all(meta)
        for alias, rows in taken.items():
            if len(rows):
                self._waiting.setdefault(alias, []).append(rows)
        chunks = [(alias, concat(*parts)) for alias, parts in self._waiting.items() if parts]
        try:
            if failure is not None:
                raise failure
            assert self.store is not None
            outcome.written = self.store.write(chunks, meta_now)
        except Exception as error:  # a full disk, an I/O error: keep the rows, try again
            outcome.error = self.unavailable or f"{type(error).__name__}: {error}"
            self._waiting = {alias: [rows] for alias, rows in chunks}
            outcome.given_up = self._bound_waiting()
            outcome.waiting = sum(len(rows) for parts in self._waiting.values() for rows in parts)
            return outcome
        self._waiting.clear()
        with self._counts:
            for alias, rows in chunks:
                self._on_disk[alias] = self._on_disk.get(alias, 0) + len(rows)
                if alias not in self._oldest or not math.isfinite(self._oldest[alias]):
                    self._oldest[alias] = float(rows.time[0])
        return outcome

    def _ready(self, outcome: FlushOutcome) -> None:
        """Make sure a store is open and is the file on disk; raise if it cannot be."""
        if self.store is not None and (why := self.store.moved()) is not None:
            self.store.close()
            self.store = None
            self._rewrite(why, outcome)
            return
        if self.store is not None:
            return
        if time.monotonic() - self._tried < RETRY_OPEN or not self._try_open():
            raise StoreUnavailableError(self.unavailable or "not open")
        assert self.store is not None
        outcome.reopened = f"{self.path.name} opened again"
        if not self._loaded:  # nothing was read at start: merge the history on disk now
            self.restore(Restored({}))

    def _rewrite(self, why: str, outcome: FlushOutcome) -> None:
        """The file was deleted or replaced: a new one with every row the recorder holds."""
        if self.path.exists() and not self.path.is_symlink():
            aside = self.path.with_name(f"{self.path.name}.replaced-{int(time.time())}")
            os.replace(self.path, aside)
        for suffix in ("-wal", "-shm", ".commits"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        if not self._try_open():
            raise StoreUnavailableError(self.unavailable or "not open")
        assert self.store is not None
        held = {ch.alias: self.recorder.unflushed.flushed(ch) for ch in self.recorder.channels}
        written = self.store.write(list(held.items()))
        self._waiting.clear()  # they were held, so written
        with self._counts:
            before = sum(self._on_disk.values())
            outcome.lost = max(0, before - written)
            self._on_disk = {alias: len(rows) for alias, rows in held.items()}
            self._oldest = {a: float(r.time[0]) for a, r in held.items() if len(r)}
            self._reduced = {}
        outcome.reopened = (
            f"{self.path.name} was {why} while recording: wrote the {written} rows held in "
            f"memory to a new one"
            + (f"; {outcome.lost} older rows are lost" if outcome.lost else "")
        )

    def _bound_waiting(self) -> int:
        """Give up the oldest waiting rows beyond ``capacity`` per channel; how many."""
        given_up = 0
        for alias, parts in self._waiting.items():
            rows = concat(*parts)
            excess = len(rows) - self.capacity
            if excess > 0:
                given_up += excess
                self._waiting[alias] = [rows.tail(self.capacity)]
        self.given_up += given_up
        return given_up

    def clear(self) -> None:
        """Forget every row on disk and waiting (Clear)."""
        self._waiting.clear()
        with self._counts:
            self._on_disk.clear()
            self._oldest.clear()
            self._reduced.clear()
        if self.store is not None:
            self.store.clear()

    def purge(self, alias: str) -> None:
        """Forget one channel's rows on disk and waiting (a removed channel's purge)."""
        self._waiting.pop(alias, None)
        with self._counts:
            self._on_disk.pop(alias, None)
            self._oldest.pop(alias, None)
            self._reduced.pop(alias, None)
        if self.store is not None:
            self.store.replace(alias, Columns.empty())

    # the rows that left the rings (OnDisk, any thread) --------------------------------

    def older(self, alias: str, boundary: Boundary) -> OlderRows:
        """A snapshot of a channel's rows on disk older than ``boundary``."""
        return OlderRows(self.path, alias, boundary)

    def oldest(self, alias: str) -> float:
        """The time of a channel's oldest row on disk (inf: none)."""
        return self._oldest.get(alias, math.inf)

    def reduced_until(self, alias: str) -> float:
        """Until when the policy reduced a channel's rows (0: never)."""
        return self.reduced(alias)[1]

    def rows(self, alias: str) -> int:
        """How many rows of a channel are on disk."""
        return self._on_disk.get(alias, 0)

    def reduced(self, alias: str) -> tuple[str, float]:
        """The operator the policy reduced a channel's oldest rows to, and until when."""
        return self._reduced.get(alias, ("", 0.0))

    # upkeep (the collector's retention thread) ----------------------------------------

    def merge(self, pace: Callable[[float], None] | None = None) -> int:
        """Merge each channel's newest small chunks (one per flush) into one; how many.

        A flush writes one chunk per channel every half second; merged, a channel's
        rows on disk stay in few chunks, so reads of long ranges read few. ``pace(s)``
        is called after each merge that wrote (it may raise to stop).
        """
        store, merged = self.store, 0
        if store is None:
            return 0
        for channel in list(self.recorder.channels):
            began = time.monotonic()
            if (count := store.merge_tail(channel.alias, MERGED)) and pace is not None:
                pace(time.monotonic() - began)
            merged += count
        return merged

    def after_policy(self, alias: str, removed: int) -> None:
        """The policy took ``removed`` rows of ``alias`` away: what the store holds now."""
        store = self.store
        if store is None:
            return
        oldest, reduced = store.oldest(alias), store.reductions().get(alias)
        with self._counts:
            self._on_disk[alias] = max(0, self._on_disk.get(alias, 0) - removed)
            self._oldest[alias] = oldest
            if reduced is not None:
                self._reduced[alias] = reduced

    def close(self) -> None:
        """Close the store (if open)."""
        if self.store is not None:
            self.store.close()


def _import_legacy(directory: Path, store: SpillStore, aliases: set[str]) -> int:
    """Rows of the append-only files of earlier versions (``<alias>.rec|.jsonl``), once."""
    legacy_meta = directory / "collector.json"
    meta: dict[str, Any] = json.loads(legacy_meta.read_text()) if legacy_meta.exists() else {}
    aliases = aliases | set(meta.get("pushed", {}))
    imported = 0
    for alias in sorted(aliases):
        for path in (directory / f"{alias}.rec", directory / f"{alias}.jsonl"):
            if not path.exists():
                continue
            rows = read_legacy(path)
            store.write([(alias, rows)])
            imported += len(rows)
            os.replace(path, path.with_name(path.name + ".imported"))
    if meta:
        store.write([], meta)
        os.replace(legacy_meta, legacy_meta.with_name("collector.json.imported"))
    return imported


def read_legacy(path: Path) -> Columns:
    """The rows of a spill file of decision 0004 (a torn tail is left out)."""
    if path.suffix == ".jsonl":
        items = []
        for line in path.read_bytes().splitlines(keepends=True):
            try:
                items.append(json.loads(line))
            except ValueError:
                break
        return text_rows(items)
    header = path.with_suffix(".rec.json")
    record = array_record(np.dtype("<f8"), ())
    if header.exists():
        layout = json.loads(header.read_text())
        record = array_record(np.dtype(layout["dtype"]), tuple(layout["shape"]))
    blob = path.read_bytes()
    data = np.frombuffer(blob[: len(blob) - len(blob) % record.itemsize], record)
    return Columns(data["time"], data["value"], data["severity"], data["status"])
