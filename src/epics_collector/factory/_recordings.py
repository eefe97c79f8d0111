"""A factory's recordings: its collectors' (live) and those kept after them (retired).

A recording belongs to its factory, not to its collector process. Destroy moves the
collector's folder aside (``DATA_DIR/<name>.<YYYYmmdd-HHMMSS>``) and marks it
destroyed; the folder is then a *retired* recording: listed, read with the same Query
operators and paging as a live collector, and kept until a Purge (its own right,
``delete``) removes it. A new collector of the same name starts empty beside it.

Every method here but :meth:`Recordings.retired_ids` does file work and runs on a
worker thread: reads on the factory's :class:`~epics_collector.core.ReadPool` (bounded
per host and in all, refused when full), catalogue scans and purges in
``asyncio.to_thread``. The cache of recordings read into memory has its own lock.
"""

from __future__ import annotations

import datetime
import math
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epics_collector.storage import (
    DESCRIPTION,
    SPILL,
    DirectoryBusyError,
    DirectoryLock,
    RetentionChannel,
    RetentionEngine,
    RetentionRun,
    SpillStore,
    StoredRecording,
    Summary,
    describe,
    description,
    summarise,
)

RETIRED_ID = re.compile(r"[A-Za-z0-9_-]{1,40}\.[0-9]{8}-[0-9]{6}(-[0-9]{1,3})?")
RETIRED, LIVE = "retired", "live"


class RecordingError(LookupError):
    """A recording that cannot be read or purged as asked (the text says why)."""


@dataclass(frozen=True)
class Listed:
    """One recording of the catalogue."""

    id: str  # a live collector's name, or a retired folder's name
    name: str  # the collector's name
    state: str  # live or retired
    summary: Summary

    @property
    def prefix(self) -> str:
        """The collector's prefix when it recorded."""
        return str(self.summary.description.get("prefix", ""))

    def time(self, key: str) -> float:
        """``created`` or ``destroyed`` (POSIX s; NaN if unknown)."""
        value = self.summary.description.get(key)
        return float(value) if isinstance(value, int | float) else math.nan


class Recordings:
    """The recordings under ``data_dir``: listed, read (cached), retired and purged."""

    def __init__(
        self, data_dir: Path, cached: int = 2, on_loss: Callable[[str, int], None] | None = None
    ) -> None:
        self.data_dir, self.cached = data_dir, cached
        self.on_loss = on_loss  # (id, rows): a retired file read with damaged chunks
        self._cache: OrderedDict[str, StoredRecording] = OrderedDict()
        self._lock = threading.Lock()  # the cache, and loads (one at a time)

    # retiring -------------------------------------------------------------------------

    def retire(self, name: str) -> str | None:
        """Keep ``DATA_DIR/name`` as a retired recording; its id (None: nothing to keep).

        A folder with nothing in it is left where it is.
        """
        directory = self.data_dir / name
        if not directory.is_dir() or directory.is_symlink() or not any(directory.iterdir()):
            return None
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            target = directory.with_name(f"{name}.{stamp}" + (f"-{n}" if n else ""))
            if not target.exists():
                directory.rename(target)
                if (target / DESCRIPTION).is_file() or (target / SPILL).is_file():
                    describe(target, name=name, destroyed=time.time())
                return target.name
        return None

    # listing --------------------------------------------------------------------------

    def catalogue(self, live: dict[str, str]) -> list[Listed]:
        """Every recording: ``live`` (name -> type of the factory's devices) and retired.

        A live device's folder is a recording when it is a collector's; a retired one
        when it holds a description or a spill file.
        """
        found: list[Listed] = []
        if not self.data_dir.is_dir():
            return found
        for directory in sorted(self.data_dir.iterdir()):
            if directory.is_symlink() or not directory.is_dir():
                continue
            name = directory.name
            if name in live:
                if live[name] == "collector":
                    found.append(Listed(name, name, LIVE, summarise(directory)))
            elif RETIRED_ID.fullmatch(name) and self._kept(directory):
                found.append(Listed(name, name.partition(".")[0], RETIRED, summarise(directory)))
        return found

    @staticmethod
    def _kept(directory: Path) -> bool:
        return (directory / DESCRIPTION).is_file() or (directory / SPILL).is_file()

    def retired_ids(self) -> list[str]:
        """The ids of the retired recordings (names only: cheap)."""
        if not self.data_dir.is_dir():
            return []
        return sorted(
            d.name
            for d in self.data_dir.iterdir()
            if RETIRED_ID.fullmatch(d.name) and d.is_dir() and not d.is_symlink()
        )

    def _retired(self, recording: str) -> Path:
        """The folder of retired recording ``recording``; RecordingError if there is none."""
        if not RETIRED_ID.fullmatch(recording):
            raise RecordingError(
                f"{recording[:80]!r} is not a retired recording's id (NAME.YYYYmmdd-HHMMSS, "
                "as Recordings lists them); a live collector is read through its own Query"
            )
        directory = self.data_dir / recording
        if directory.is_symlink() or not directory.is_dir() or not self._kept(directory):
            raise RecordingError(f"no retired recording {recording!r} (see Recordings)")
        return directory

    # reading (a read worker) -------------------------------------------------------------

    def stored(self, recording: str) -> StoredRecording:
        """The retired recording, read into memory on first use (the newest few kept)."""
        directory = self._retired(recording)
        with self._lock:
            found = self._cache.get(recording)
            if found is None:
                found = StoredRecording(directory, self._loss_of(recording))
                self._cache[recording] = found
                while len(self._cache) > self.cached:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(recording)
            return found

    def _loss_of(self, recording: str) -> Callable[[int], None] | None:
        """What a recording tells of rows in damaged chunks when a channel is read."""
        on_loss = self.on_loss
        if on_loss is None:
            return None
        return lambda rows: on_loss(recording, rows)

    def channel(self, recording: str, alias: str) -> tuple[StoredRecording, str]:
        """A channel of a retired recording, given by alias or source PV; (recording, alias)."""
        stored = self.stored(recording)
        if alias in stored.held:
            return stored, alias
        for channel in description(self.data_dir / recording).get("channels", []):
            pv = str(channel.get("pv", ""))
            if alias in (pv, pv.partition("://")[2]) and channel.get("alias") in stored.held:
                return stored, str(channel["alias"])
        raise RecordingError(
            f"{recording} has no channel {alias[:80]!r}; channels: {', '.join(stored.aliases)}"
        )

    # retention (a worker thread) ----------------------------------------------------------

    def apply_policy(
        self, recording: str, engine: RetentionEngine, now: float, dry_run: bool = False
    ) -> RetentionRun:
        """Apply the retention policy to a retired recording; what it did (or would do).

        Under the recording's store lock (DirectoryBusyError: another process has it);
        the recording read into memory is dropped when rows changed.
        """
        directory = self._retired(recording)
        channels = [
            RetentionChannel(c.alias, c.pv.partition("://")[2] or c.pv, c.kind)
            for c in summarise(directory).channels
        ]
        lock = DirectoryLock(directory / SPILL.parent)
        lock.acquire()
        try:
            store = SpillStore(directory / SPILL)
            try:
                run = engine.apply(
                    store, recording, recording.partition(".")[0], channels, now, dry_run
                )
            finally:
                store.close()
        finally:
            lock.release()
        if run.steps and not dry_run:
            with self._lock:
                self._cache.pop(recording, None)
        return run

    # purging ----------------------------------------------------------------------------

    def purge(self, recording: str) -> dict[str, Any]:
        """Remove a retired recording's files; what was removed (rows, bytes)."""
        directory = self._retired(recording)
        summary = summarise(directory)
        lock = DirectoryLock(directory / SPILL.parent)
        try:
            lock.acquire()  # (not while the retention policy works on it)
        except DirectoryBusyError:
            raise RecordingError(
                f"{recording} is being worked on (its retention policy): try again shortly"
            ) from None
        with self._lock:
            self._cache.pop(recording, None)
        try:
            shutil.rmtree(directory)
        finally:
            lock.release()
        return {"recording": recording, "rows": summary.rows, "bytes": summary.bytes}
