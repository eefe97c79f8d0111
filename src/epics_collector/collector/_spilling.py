"""A collector's history on disk (``persist: true``): reloaded at start, flushed, cleared.

:class:`Spill` owns the collector's :class:`SpillLedger`, the directory's lock (one
process per store: a second process on it refuses to start), the lock that keeps one
flush or clear at a time, and the recording's description (``recording.json``); it says
in Message when writing fails and when it works again. The writes run in an executor:
the event loop keeps serving PVs meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.collector._spill_ledger import FlushOutcome, SpillLedger
from epics_collector.core import Severity
from epics_collector.storage import (
    KINDS,
    DirectoryBusyError,
    DirectoryLock,
    PathError,
    describe,
    description,
)

log = logging.getLogger(__name__)
Report = Callable[[str, Severity], None]


class StoreBusyError(RuntimeError):
    """Another process writes this collector's history: this one must not start."""


class Spill:
    """Writes a collector's rows to ``directory`` and reads them back after a restart."""

    def __init__(
        self,
        config: CollectorConfig,
        data_dir: Path,
        prefix: Callable[[], str],
        recorder: Recorder,
        report: Report,
        damaged: Callable[[int, str], None],
    ) -> None:
        """The rows go to ``data_dir/spill``; the description names the device ``prefix()``."""
        self.data_dir, self.directory = data_dir, data_dir / "spill"
        self.recorder, self.report, self._prefix = recorder, report, prefix
        self._described = self._describe_failed = False  # recording.json written / failing
        self.damaged = damaged  # (rows, text): history on disk lost to damage
        self.ledger = SpillLedger(self.directory, recorder, capacity=config.capacity)
        recorder.history.read_from(self.ledger)  # the rows that left the rings
        self._lock = DirectoryLock(self.directory)  # this process's, while it runs
        self._writing = asyncio.Lock()  # one flush or clear at a time
        self._owner = False  # the store is this process's (never written before, or if not)
        self._failing = False

    @property
    def owner(self) -> bool:
        """Whether this process holds the store (load took its lock)."""
        return self._owner

    @property
    def failing(self) -> bool:
        """Whether the store cannot be written now (Message says so, MAJOR)."""
        return self._failing

    def load(self, add_pushed: Callable[[str, str], Any]) -> bool:
        """Reload what a previous run wrote; whether it was recording when it stopped.

        Channels it had pushed to are made again with ``add_pushed(alias, kind)``.
        """
        recorder = self.recorder
        try:  # one process per store: a second one on it would write every row twice
            self._lock.acquire()
            self._owner = True
        except DirectoryBusyError as error:
            raise StoreBusyError(
                f"the history in {self.directory} is written by another process (pid "
                f"{error.holder}): this one does not start (two devices on one data "
                "directory?)"
            ) from None
        except (OSError, PathError) as error:  # a read-only folder, a full disk: no file
            log.warning("%s: the store's lock cannot be taken (%s)", self.directory, error)
            self._owner = True  # (no other process can write there either)
        aliases = {ch.alias for ch in recorder.channels}
        self._found_kinds()
        restored = self.ledger.open(aliases)
        meta = restored.meta
        for alias, kind in dict(meta.get("pushed", {})).items():
            if alias not in aliases:
                add_pushed(alias, kind)
        self.ledger.restore(restored)
        recorder.count = int(meta.get("count", 0))
        recorder.dropped = int(meta.get("dropped", 0)) + restored.lost
        recorder.overruns = int(meta.get("overruns", 0))
        if restored.lost:  # said where an operator looks, and kept there
            self.damaged(restored.lost, "; ".join(restored.problems) + " (counted in Dropped)")
        else:
            for problem in restored.problems:
                self.report(problem, Severity.MINOR)
        if restored.unavailable is not None:
            self._failing = True
            self.report(
                f"the history on disk cannot be written ({restored.unavailable}): read "
                f"{restored.samples} samples without writing; new rows wait in memory and "
                "opening it is retried every 5 s",
                Severity.MAJOR,
            )
        resume = bool(meta.get("recording", False))
        if resume:  # it was recording when it stopped without Stop: mark the outage
            recorder.outage(float(meta.get("flushed", time.time())))
        if not restored.problems and restored.unavailable is None and meta:
            self.report(
                f"reloaded {restored.samples} samples from {self.directory}", Severity.NO_ALARM
            )
        return resume

    def _found_kinds(self) -> None:
        """``auto`` channels take the kind the recording on disk says they had found."""
        described = description(self.data_dir).get("channels") or []
        kinds = {str(c.get("alias")): c.get("kind") for c in described if isinstance(c, dict)}
        for channel in self.recorder.channels:
            kind = kinds.get(channel.alias)
            if channel.kind == "auto" and kind in KINDS:
                with self.recorder.lock:
                    channel.resolve(str(kind), self.recorder.config)

    async def flush(self, pushed: Mapping[str, str]) -> None:
        """Write the rows recorded since the last flush (a failed write keeps them)."""
        if not self._owner:  # another process's store (start refused): never touch it
            return
        names = dict(pushed)
        recorder = self.recorder

        def meta() -> dict[str, Any]:  # under the recorder's lock, with the rows taken
            return {
                "pushed": names,
                "count": recorder.count,
                "dropped": recorder.dropped,
                "overruns": recorder.overruns,
                "recording": recorder.recording,
                "flushed": time.time(),
            }

        async with self._writing:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(None, self.ledger.flush, meta)
        self._report(outcome)
        if not self._described:
            self.describe()

    def describe_later(self) -> None:
        """The channels changed: describe the recording again at the next flush."""
        self._described = False

    def describe(self) -> None:
        """Describe the recording on disk for whoever reads it later.

        Written again at the next flush while it fails. Its factory keeps and serves the
        recording after this collector is destroyed, and needs each channel's alias,
        source PV and kind to do so.
        """
        if not self._owner:  # (another process's store)
            return
        self._described = False
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            describe(
                self.data_dir,
                type="collector",
                prefix=self._prefix(),
                created=time.time(),
                channels=[_described(ch) for ch in self.recorder.channels],
            )
        except OSError as error:  # a full disk, a read-only folder: retried at each flush
            if not self._describe_failed:
                text = (
                    f"the recording's description could not be written ({error}); its rows "
                    "are kept, and it is written again at the next flush"
                )
                log.warning(text)
                if not self._failing:  # (else Message says so already, MAJOR)
                    self.report(text, Severity.MINOR)
            self._describe_failed = True
            return
        self._described, self._describe_failed = True, False

    async def clear(self, forget: Callable[[], None]) -> None:
        """``forget()`` the rows in memory and clear the store, never under a flush."""
        if not self._owner:
            forget()
            return
        async with self._writing:  # a flush that took rows before the clear ends first
            forget()
            await asyncio.get_running_loop().run_in_executor(None, self.ledger.clear)

    async def purge(self, alias: str, forget: Callable[[], None]) -> None:
        """``forget()`` a channel's rows in memory and purge them from the store."""
        if not self._owner:
            forget()
            return
        async with self._writing:  # a flush that took its rows before ends first
            forget()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self.ledger.purge, alias)
        self._described = False  # (the description lists it no more)

    def close(self) -> None:
        """Close the store (after the last flush) and let another process have it."""
        if self._owner:
            self.ledger.close()
        self._lock.release()

    def _report(self, outcome: FlushOutcome) -> None:
        if outcome.given_up or outcome.lost:
            self.recorder.count_dropped(outcome.given_up + outcome.lost)
        if outcome.reopened is not None and outcome.lost:
            self.damaged(outcome.lost, outcome.reopened + " (counted in Dropped)")
        elif outcome.reopened is not None:
            self.report(outcome.reopened, Severity.MINOR)
        given_up = self.ledger.given_up
        if outcome.error is not None:
            self._failing = True
            lost = f"; {given_up} rows given up" if outcome.given_up else ""
            self.report(
                f"writing the history to disk failed ({outcome.error}): {outcome.waiting} rows "
                f"wait in memory and are retried every 0.5 s{lost}",
                Severity.MAJOR,
            )
        elif self._failing:
            self._failing = False
            self.report(
                f"writing the history to disk works again ({outcome.written} rows written"
                + (f"; {given_up} rows were given up, counted in Dropped)" if given_up else ")"),
                Severity.MINOR if given_up else Severity.NO_ALARM,
            )


def _described(channel: Channel) -> dict[str, Any]:
    """A channel in the recording's description (a removed one: when it was removed)."""
    found: dict[str, Any] = {
        "alias": channel.alias,
        "pv": channel.config.pv,
        "kind": channel.kind,
    }
    if channel.removed == channel.removed:
        found["removed"] = channel.removed
    return found
