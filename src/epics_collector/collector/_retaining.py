"""A collector's upkeep of its recording on disk: chunks merged, the retention policy applied.

With ``persist`` the store keeps every row (see :class:`SpillLedger`); this part keeps it
readable and bounded, on a thread of its own at the lowest CPU priority (recording comes
first), paced like the factory's (each transaction followed by a pause as long as it took):

- every :data:`MERGE_EVERY` seconds, each channel's newest small chunks (a flush writes
  one per channel every half second) are merged into one;
- every ``retention_every`` seconds, the ``retention`` policy (the factory's, or the
  collector's own config) is applied to the rows that left the ring: the ring's rows
  are served raw from memory, so the store keeps them raw until they leave it. The
  recording's name, for the rules' ``match``, is its data directory's (the collector's
  name in its factory).

What it did is counted (RetentionReduced, RetentionDeleted), said in Message and the log;
a failure is logged with its traceback, said MAJOR, and tried again next time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._recorder import Recorder
from epics_collector.collector._spill_ledger import SpillLedger
from epics_collector.core import (
    AttrR,
    Caller,
    Int,
    Operation,
    Part,
    RpcError,
    Severity,
    Table,
    rpc,
    scan,
)
from epics_collector.process import BusyGauge, lower_priority
from epics_collector.storage import (
    RetentionChannel,
    RetentionEngine,
    RetentionPacing,
    RetentionRun,
    RetentionStoppedError,
    retention_columns,
    retention_next,
    rule_for,
)

log = logging.getLogger(__name__)
Report = Callable[[str, Severity], None]
MERGE_EVERY = 30.0  # seconds between merges of the flushes' small chunks
RETENTION_COLUMNS: dict[str, Any] = {
    "alias": str,
    "oldest": np.float64,
    "reduced": str,
    "reduced_until": np.float64,
    "next_action": str,
    "next_time": np.float64,
}


class Retaining(Part):
    """Merges a collector's chunks and applies its retention policy; counts what it did."""

    reduced_rows = AttrR(
        Int(),
        name=CollectorPv.RETENTION_REDUCED,
        description="rows on disk replaced by their reduced bins by the retention policy "
        "(since start)",
    )
    deleted_rows = AttrR(
        Int(),
        name=CollectorPv.RETENTION_DELETED,
        description="rows on disk deleted by the retention policy (since start)",
    )
    retention = AttrR(
        Table(columns=RETENTION_COLUMNS),
        name=CollectorPv.RETENTION,
        description="One row per channel with rows on disk: oldest (POSIX s of its oldest "
        "row), reduced (the operator its oldest rows were reduced to, or empty) and "
        "reduced_until, next_action (reduce to mean_60, delete, or empty) and next_time "
        "(when it is due; NaN: none)",
    )

    def __init__(
        self,
        config: CollectorConfig,
        recorder: Recorder,
        ledger: SpillLedger,
        name: str,
        report: Report,
    ) -> None:
        self.config, self.recorder, self.ledger, self.name = config, recorder, ledger, name
        self._report = report
        # (its thread is at nice 19, but shares the interpreter: it gives way while busy)
        self._pacing = RetentionPacing(BusyGauge(lambda: recorder.arrivals))
        self._worker = ThreadPoolExecutor(1, "retention", initializer=lower_priority)
        self._task: asyncio.Task[Any] | None = None  # the merge or policy running, if one
        self._shown = False  # the Retention table was filled once
        self._done = RetentionRun()  # the channels the running application finished
        self._merged = time.monotonic()
        self._applied = time.monotonic()  # the first application a period after start
        self.reduced_rows.set(0)
        self.deleted_rows.set(0)

    @scan(1.0)
    async def upkeep(self) -> None:
        """Merge every MERGE_EVERY s; apply the policy every retention_every s.

        The work runs as a task of its own (the scan only starts it), so a stop never
        waits for a scan: :meth:`close` ends the work after its transaction.
        """
        if not self._shown:  # (the rows on disk are known once the store was read)
            self._shown = True
            self.show(time.time())
        if self._working():
            return
        now = time.monotonic()
        policy = bool(self.config.retention) and now - self._applied >= self.config.retention_every
        if policy:
            self._applied = self._merged = now
            self._task = asyncio.create_task(self.apply(time.time()), name="retention")
        elif now - self._merged >= MERGE_EVERY:
            self._merged = now
            self._task = asyncio.create_task(self._merge(), name="retention merge")

    def _working(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _merge(self) -> None:
        """Merge each channel's newest small chunks (the worker thread, paced)."""
        try:
            await self._in_worker(self.ledger.merge, self._pacing)
        except RetentionStoppedError:
            return
        except Exception as error:  # (a full disk: rolled back, nothing lost)
            log.exception("merging the store's chunks failed")
            self._report(
                f"merging the store's chunks failed ({error}); tried again", Severity.MAJOR
            )
            return
        self.show(time.time())

    @rpc(name=CollectorPv.RETENTION_APPLY, access=Operation.DELETE, with_caller=True)
    async def apply_now(self, *, caller: Caller) -> dict[str, Any]:
        """Apply the retention policy to the rows on disk now (the delete right).

        One row per action: recording, channel, action (reduce or delete), before (rows
        older than this, POSIX s), operator, rows taken, rows written in their place,
        bytes of rows freed. The ring's rows are left raw (see Retention).
        """
        if self._working():
            raise RpcError("the store is being worked on now (merge or policy): try again shortly")
        log.info("retention applied now, asked by %s", caller.who)
        self._task = task = asyncio.create_task(self.apply(time.time()), name="retention")
        return retention_columns((await task).steps)

    async def apply(self, now: float) -> RetentionRun:
        """Merge, then apply the policy as at ``now`` (POSIX s); reported and counted."""
        try:
            run = await self._in_worker(self._apply, now)
        except RetentionStoppedError as stopped:  # the collector stops: count what was done
            run = self._done
            if stopped.run is not None:
                run.steps += stopped.run.steps
        except Exception as error:  # (a full disk: rolled back): nothing kept is lost
            log.exception("retention of the recording on disk failed")
            self._report(
                f"retention failed ({type(error).__name__}: {error}); nothing it keeps is "
                "lost (tried again next time)",
                Severity.MAJOR,
            )
            return RetentionRun()
        if run.rows_reduced:
            self.reduced_rows.set(self.reduced_rows.value + run.rows_reduced)
        if run.rows_deleted:
            self.deleted_rows.set(self.deleted_rows.value + run.rows_deleted)
        for step in run.steps:
            self._report(f"retention: {step.text()}", Severity.NO_ALARM)
        self.show(now)
        return run

    async def _in_worker(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, work, *args)

    def _apply(self, now: float) -> RetentionRun:
        """The policy over the rows that left each ring (the worker thread)."""
        run = self._done = RetentionRun()  # (the channels done, if it stops meanwhile)
        self.ledger.merge(self._pacing)
        store = self.ledger.store
        if store is None or not self.config.retention:
            return run
        engine = RetentionEngine(self.config.retention, self._pacing, shrink=False)
        for channel in list(self.recorder.channels):
            with self.recorder.lock:  # the ring's oldest row: rows from it on stay raw
                segments = channel.ring.segments()
                below = float(segments[0].time[0]) if segments else math.inf
            found = RetentionChannel(channel.alias, _pv(channel.config.pv), channel.kind, below)
            try:
                done = engine.apply(store, self.name, self.name, [found], now)
            except RetentionStoppedError as stopped:  # (what it committed is on disk)
                self.ledger.after_policy(channel.alias, _removed(stopped.run or RetentionRun()))
                raise
            self.ledger.after_policy(channel.alias, _removed(done))
            run.steps += done.steps
            run.file_freed += done.file_freed
        return run

    def show(self, now: float) -> None:
        """The Retention table: each channel's rows on disk and the policy's next action."""
        rows: dict[str, list[Any]] = {k: [] for k in RETENTION_COLUMNS}
        for channel in list(self.recorder.channels):
            oldest = self.ledger.oldest(channel.alias)
            if not math.isfinite(oldest):
                continue
            operator, until = self.ledger.reduced(channel.alias)
            action, at = self._next(_pv(channel.config.pv), channel.kind, oldest, until, now)
            for key, value in zip(
                rows,
                (channel.alias, oldest, operator, until or math.nan, action, at),
                strict=True,
            ):
                rows[key].append(value)
        self.retention.set(rows)

    def _next(
        self, pv: str, kind: str, oldest: float, until: float, now: float
    ) -> tuple[str, float]:
        rule = rule_for(self.config.retention, self.name, [pv])
        if rule is None:
            return "", math.nan
        return retention_next(rule, kind, oldest, max(oldest, until), now)

    async def close(self) -> None:
        """Stop after the current transaction (the collector stops; its store closes next)."""
        self._pacing.stop()
        if self._task is not None:
            await self._task  # (ends at its next pause: each handles the stop)
        stop = functools.partial(self._worker.shutdown, wait=True, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, stop)


def _removed(run: RetentionRun) -> int:
    """Rows the policy took off disk (taken less written in their place)."""
    return sum(s.rows - s.written for s in run.steps)


def _pv(name: str) -> str:
    """A channel's PV without its protocol (``pva://X`` -> ``X``), as the rules match it."""
    return name.partition("://")[2] or name
