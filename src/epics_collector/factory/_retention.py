"""A factory's retention: its policy applied to the retired recordings, and the disk budget.

Every ``retention_every`` seconds (and on a ``RetentionApply`` call) the factory applies
its ``retention`` rules to each retired recording (:meth:`Recordings.apply_policy`, on a
thread of its own at the lowest CPU priority, paced: each transaction is followed by a
pause as long as it took), then
holds every recording to ``max_bytes``: retired recordings go whole, the one whose
newest row is oldest first. A live recording is never deleted; when the budget cannot
be met without it, ``RecordingBytes`` is in MAJOR alarm and Message says why.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from epics_collector.core import (
    AttrR,
    Caller,
    Int,
    Operation,
    Part,
    RpcError,
    Severity,
    rpc,
    scan,
)
from epics_collector.factory._config import FactoryConfig
from epics_collector.factory._names import FactoryPv
from epics_collector.factory._recordings import RETIRED, Listed, RecordingError, Recordings
from epics_collector.process import lower_priority
from epics_collector.storage import (
    DirectoryBusyError,
    RetentionEngine,
    RetentionPacing,
    RetentionStep,
    RetentionStoppedError,
    retention_columns,
    retention_next,
    rule_for,
)

log = logging.getLogger(__name__)
Report = Callable[[str, Severity], None]


def _table(outcome: Outcome) -> dict[str, Any]:
    """An outcome as an RPC's table: a row per step, then per recording purged."""
    return retention_columns(outcome.steps, outcome.purged)


@dataclass
class Outcome:
    """One application of the policy and the budget (or a dry run of them)."""

    steps: list[RetentionStep] = field(default_factory=list)
    purged: list[tuple[str, int, int]] = field(default_factory=list)  # id, rows, bytes
    busy: list[str] = field(default_factory=list)  # recordings another process had
    failed: list[str] = field(default_factory=list)  # recordings the policy failed on, why
    total: int = 0  # bytes of every recording after it
    live: int = 0  # of which live recordings'
    short: str = ""  # why the budget cannot be met ("" it is)

    def lines(self) -> list[str]:
        """What was done, a line per action."""
        found = [step.text() for step in self.steps]
        found += [
            f"{r}: deleted whole for the disk budget: {n} rows, {b} bytes"
            for r, n, b in self.purged
        ]
        return found


def next_action(config: FactoryConfig, listed: Listed, now: float) -> tuple[str, float]:
    """The policy's next action on a recording and its time (("", NaN): none).

    A live collector applies it itself, to the rows that left its ring: their next
    action may come later than said here while its ring still holds them.
    """
    found: list[tuple[float, str]] = []
    for channel in listed.summary.channels:
        if not channel.rows:
            continue
        pv = channel.pv.partition("://")[2] or channel.pv
        rule = rule_for(config.retention, listed.name, [pv])
        if rule is None:
            continue
        action, at = retention_next(rule, channel.kind, channel.first, channel.oldest_raw, now)
        if action:
            found.append((at, action))
    if not found:
        return "", math.nan
    at, action = min(found)
    return action, at


class RetentionPvs(Part):
    """Applies the factory's retention policy and disk budget; counts what it did."""

    reduced_rows = AttrR(
        Int(),
        name=FactoryPv.RETENTION_REDUCED,
        description="rows of retired recordings replaced by their reduced bins (since start)",
    )
    deleted_rows = AttrR(
        Int(),
        name=FactoryPv.RETENTION_DELETED,
        description="rows of retired recordings deleted by the policy or the disk budget "
        "(since start)",
    )
    recording_bytes = AttrR(
        Int(),
        name=FactoryPv.RECORDING_BYTES,
        description="bytes of every recording under the data directory; MAJOR alarm when "
        "over max_bytes and only live recordings are left to delete",
    )

    def __init__(
        self,
        config: FactoryConfig,
        recordings: Recordings,
        live: Callable[[], dict[str, str]],
        report: Report,
        refresh: Callable[[], Any],
    ) -> None:
        """Apply ``config``'s policy to ``recordings``; ``refresh()`` re-lists them (async)."""
        self.config, self.recordings, self._live, self._report = config, recordings, live, report
        self._refresh = refresh
        self._pacing = RetentionPacing()
        #: The policy's own thread, at nice 19 (idle CPU only): recording comes first.
        self._worker = ThreadPoolExecutor(1, "retention", initializer=lower_priority)
        self._running = asyncio.Lock()  # one application at a time
        self._last = time.monotonic()  # of the last scheduled run: the first is a period on
        self.reduced_rows.set(0)
        self.deleted_rows.set(0)
        self.recording_bytes.set(0)

    @scan(1.0)
    async def schedule(self) -> None:
        """Apply the policy and the budget every ``retention_every`` seconds."""
        if not (self.config.retention or self.config.max_bytes):
            return
        if time.monotonic() - self._last < self.config.retention_every or self._running.locked():
            return
        self._last = time.monotonic()
        await self.apply(dry_run=False)

    @rpc(name=FactoryPv.RETENTION_DRY_RUN, access=Operation.READ)
    async def dry_run(self) -> dict[str, Any]:
        """What applying the retention policy and the disk budget now would do.

        Nothing is written. One row per action, as RetentionApply answers.
        """
        return _table(await self.apply(dry_run=True))

    @rpc(name=FactoryPv.RETENTION_APPLY, access=Operation.DELETE, with_caller=True)
    async def apply_now(self, *, caller: Caller) -> dict[str, Any]:
        """Apply the retention policy and the disk budget now (the delete right).

        One row per action: recording, channel, action (reduce, delete, or purge: the
        whole recording for the budget), before (rows older than this, POSIX s; NaN for
        a purge), operator, rows taken, rows written in their place, bytes of rows freed.
        """
        if self._running.locked():
            raise RpcError("the retention policy is being applied now: try again shortly")
        who = caller.who
        log.info("retention applied now, asked by %s", who)
        return _table(await self.apply(dry_run=False))

    async def apply(self, dry_run: bool) -> Outcome:
        """The policy, then the budget (on a worker thread); reported and counted."""
        async with self._running:
            try:
                loop = asyncio.get_running_loop()
                outcome = await loop.run_in_executor(self._worker, self._apply, dry_run)
            except RetentionStoppedError:
                return Outcome()
        if dry_run:
            return outcome
        reduced = sum(s.rows for s in outcome.steps if s.action == "reduce")
        deleted = sum(s.rows for s in outcome.steps if s.action == "delete")
        deleted += sum(n for _, n, _ in outcome.purged)
        if reduced:
            self.reduced_rows.set(self.reduced_rows.value + reduced)
        if deleted:
            self.deleted_rows.set(self.deleted_rows.value + deleted)
        for line in outcome.lines():
            self._report(f"retention: {line}", Severity.NO_ALARM)
        for recording in outcome.busy:
            self._report(
                f"retention: {recording} was skipped: another process holds its store "
                "(tried again next time)",
                Severity.MINOR,
            )
        for failure in outcome.failed:  # (logged with its traceback where it happened)
            self._report(
                f"retention failed on {failure}; nothing it keeps is lost (tried again next time)",
                Severity.MAJOR,
            )
        if outcome.short:
            log.error("retention: %s", outcome.short)
            self._report(outcome.short, Severity.MAJOR)
            self.recording_bytes.set(outcome.total, severity=Severity.MAJOR)
        else:
            self.recording_bytes.set(outcome.total)
        if outcome.steps or outcome.purged:
            await self._refresh()
        return outcome

    def _apply(self, dry_run: bool) -> Outcome:
        """Apply the policy to every retired recording, then the budget (a worker thread)."""
        outcome = Outcome()
        engine = RetentionEngine(self.config.retention, None if dry_run else self._pacing)
        now = time.time()
        live = self._live()
        if self.config.retention:
            for recording in self.recordings.retired_ids():
                try:
                    run = self.recordings.apply_policy(recording, engine, now, dry_run)
                except DirectoryBusyError:
                    outcome.busy.append(recording)
                    continue
                except RecordingError:
                    continue  # (gone meanwhile)
                except Exception as error:  # (a full disk, a damaged file): the others go on
                    log.exception("retention of %s failed", recording)
                    outcome.failed.append(f"{recording}: {error}")
                    continue
                outcome.steps += run.steps
        self._budget(outcome, live, dry_run)
        return outcome

    def _budget(self, outcome: Outcome, live: dict[str, str], dry_run: bool) -> None:
        """Delete retired recordings, the oldest data first, until max_bytes holds."""
        found = self.recordings.catalogue(live)
        outcome.total = sum(r.summary.bytes for r in found)
        outcome.live = sum(r.summary.bytes for r in found if r.state != RETIRED)
        limit = self.config.max_bytes
        if limit is None or outcome.total <= limit:
            return
        retired = sorted(
            (r for r in found if r.state == RETIRED),
            key=lambda r: (r.summary.last if math.isfinite(r.summary.last) else -math.inf, r.id),
        )
        for listed in retired:
            if outcome.total <= limit:
                break
            if not dry_run:
                try:
                    self.recordings.purge(listed.id)
                except (RecordingError, OSError) as error:
                    outcome.busy.append(f"{listed.id} ({error})")
                    continue
                log.info("retention: deleted %s for the disk budget", listed.id)
            outcome.purged.append((listed.id, listed.summary.rows, listed.summary.bytes))
            outcome.total -= listed.summary.bytes
        if outcome.total > limit:
            outcome.short = (
                f"disk budget max_bytes={limit} cannot be met: the recordings hold "
                f"{outcome.total} bytes, {outcome.live} of them live collectors' (never "
                "deleted by the budget); destroy or clear a collector, or raise max_bytes"
            )

    def close(self) -> None:
        """Stop the policy's work after its current transaction (the factory stops)."""
        self._pacing.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
