"""A collector's history on disk (``persist: true``): what is written, kept and lost.

Rows leave the recorder for a *pending* list and leave that list only when the
transaction that writes them has committed; a failed write (a full disk) keeps them
for the next flush. While writes keep failing, at most ``capacity`` rows per channel
wait; older ones are given up, counted and reported, never dropped silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.storage import Columns, SpillStore, concat
from epics_collector.storage._spill import array_record, text_rows

DATABASE = "history.sqlite"


@dataclass
class FlushOutcome:
    """What one flush did (reported by the device on its event loop)."""

    written: int = 0
    error: str | None = None  # the write failed: the rows wait for the next flush
    given_up: int = 0  # rows that had waited too long: not on disk, counted in Dropped
    waiting: int = 0  # rows taken from the recorder and not yet on disk


@dataclass
class Restored:
    """What a restart found on disk."""

    meta: dict[str, Any]
    samples: int = 0
    problems: list[str] = field(default_factory=list)


class Persistence:
    """One collector's spill store, the rows waiting for it, and compaction."""

    def __init__(self, directory: Path, recorder: Recorder, *, capacity: int, ring: bool) -> None:
        self.directory = directory
        self.recorder = recorder
        self.capacity, self.ring = capacity, ring
        self.store = SpillStore(directory / DATABASE)
        self._waiting: dict[str, list[Columns]] = {}
        self._on_disk: dict[str, int] = {}
        self.given_up = 0  # since the store was opened

    # start ---------------------------------------------------------------------------

    def open(self, aliases: set[str]) -> Restored:
        """The meta of the last run (imports spill files of earlier versions once)."""
        problems = [self.store.recovered] if self.store.recovered else []
        imported = _import_legacy(self.directory, self.store, aliases)
        if imported:
            problems.append(f"imported {imported} rows from spill files of an earlier version")
        return Restored(self.store.meta(), problems=problems)

    def restore(self, restored: Restored) -> None:
        """Put every channel's rows on disk back into the recorder."""
        for channel in self.recorder.channels:
            loaded = self.store.load(channel.alias)
            for rows in loaded.parts:
                self.recorder.restore(channel, rows)
                restored.samples += len(rows)
            self._on_disk[channel.alias] = self.store.rows(channel.alias)
            if loaded.bad_chunks or loaded.bad_rows:
                restored.problems.append(
                    f"{channel.alias}: skipped {loaded.bad_chunks} damaged chunks and "
                    f"{loaded.bad_rows} rows without a valid time"
                )

    # flush (executor) ------------------------------------------------------------------

    def flush(self, meta: dict[str, Any]) -> FlushOutcome:
        """Take what each channel recorded, write it and ``meta`` in one transaction."""
        outcome = FlushOutcome()
        for channel in self.recorder.channels:
            rows = self.recorder.take_unflushed(channel)
            if len(rows):
                self._waiting.setdefault(channel.alias, []).append(rows)
        chunks = [(alias, concat(*parts)) for alias, parts in self._waiting.items() if parts]
        try:
            outcome.written = self.store.write(chunks, meta)
        except Exception as error:  # a full disk, an I/O error: keep the rows, try again
            outcome.error = f"{type(error).__name__}: {error}"
            self._waiting = {alias: [rows] for alias, rows in chunks}
            outcome.given_up = self._bound_waiting()
            outcome.waiting = sum(len(rows) for parts in self._waiting.values() for rows in parts)
            return outcome
        self._waiting.clear()
        for alias, rows in chunks:
            self._on_disk[alias] = self._on_disk.get(alias, 0) + len(rows)
        self._compact()
        return outcome

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

    def _compact(self) -> None:
        """Ring mode: a channel with more than 4 x capacity rows on disk keeps its ring's."""
        if not self.ring:
            return
        for channel in self.recorder.channels:
            if self._on_disk.get(channel.alias, 0) > 4 * self.capacity:
                # not the rows recorded meanwhile: the next flush appends those
                rows = self.recorder.flushed_history(channel)
                self.store.replace(channel.alias, rows)
                self._on_disk[channel.alias] = len(rows)

    def clear(self) -> None:
        """Forget every row on disk and waiting (Clear)."""
        self._waiting.clear()
        self._on_disk.clear()
        self.store.clear()

    def close(self) -> None:
        self.store.close()

    def add_channel(self, channel: Channel) -> None:
        """A channel made after start (a push): nothing on disk yet."""
        self._on_disk.setdefault(channel.alias, 0)


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
