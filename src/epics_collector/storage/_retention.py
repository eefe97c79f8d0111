"""The retention engine: a store's rows reduced and deleted as its policy says.

One engine for whoever owns a spill file (the factory for retired recordings, the CLI
run on a stopped factory's data). For each channel, with the first rule that matches
the recording's name or the channel's PV (:func:`~epics_collector.storage._policy.rule_for`):

- rows older than ``keep`` are deleted;
- rows of a number channel older than ``raw`` are replaced by the bins of the rule's
  ``reduce`` operator (:func:`~epics_collector.storage._binning.reduce_rows`), bins
  aligned as the retrieval API aligns them (``s // N``).

Work goes in bounded transactions of about :data:`BATCH` rows (:meth:`SpillStore.swap`),
oldest rows first, each one whole or not at all. A reduction never splits a bin: a
transaction reduces only the bins below the first row it leaves raw, so at every commit
the channel's rows below ``until`` (kept in the store's meta with the operator) are all
reduced and the rows above all raw; a kill -9 between two leaves a range served either
raw or reduced, never both or half. A dry run does the same work on an overlay of the
store (nothing written) and reports what the real run then does.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from epics_collector.storage._binning import reduce_rows
from epics_collector.storage._policy import Reducer, RetentionRule, rule_for
from epics_collector.storage._ring import Columns, concat
from epics_collector.storage._spill import REDUCED, TEXT, ChunkInfo, SpillStore, pack

log = logging.getLogger(__name__)
BATCH = 1 << 16  # rows one transaction takes at most (one chunk more when a chunk is bigger)
REDUCE, DELETE = "reduce", "delete"
BUSY_PACE = 20.0  # while recording beside it is busy, a pause this many times a transaction's
BUSY_REST = 5.0  # seconds a pause lasts at most (the policy still moves on: 1 s of 20)


STEP_COLUMNS: dict[str, Any] = {
    "recording": str,
    "channel": str,
    "action": str,
    "before": np.float64,
    "operator": str,
    "rows": np.int64,
    "written": np.int64,
    "freed": np.int64,
}


def step_columns(
    steps: list[Step], purged: Sequence[tuple[str, int, int]] = ()
) -> dict[str, np.ndarray]:
    """What the policy did as the columns of :data:`STEP_COLUMNS` (an RPC's NTTable).

    One row per step, then one per recording ``purged`` whole ((id, rows, bytes): the
    factory's disk budget).
    """
    columns = {
        "recording": [s.recording for s in steps] + [r for r, _, _ in purged],
        "channel": [s.channel for s in steps] + [""] * len(purged),
        "action": [s.action for s in steps] + ["purge"] * len(purged),
        "before": [s.before for s in steps] + [math.nan] * len(purged),
        "operator": [s.operator for s in steps] + [""] * len(purged),
        "rows": [s.rows for s in steps] + [n for _, n, _ in purged],
        "written": [s.written for s in steps] + [0] * len(purged),
        "freed": [s.freed for s in steps] + [b for _, _, b in purged],
    }
    return {
        name: np.array(values, object if STEP_COLUMNS[name] is str else STEP_COLUMNS[name])
        for name, values in columns.items()
    }


class StoppedError(Exception):
    """The owner stops: the policy's work ends after the transaction that ran.

    ``run`` is what was committed until then (set by :meth:`Engine.apply`).
    """

    run: Run | None = None


class Pacing:
    """An engine's ``pace``: after each transaction, a pause as long as it took.

    At most 1 s, so half the disk is left to others. ``busy()`` (recording in the same
    process is busy: a lower OS priority does not make a thread of one interpreter give
    way) makes it :data:`BUSY_PACE` times as long, at most :data:`BUSY_REST`. After
    :meth:`stop`, the work ends there (:class:`StoppedError`).
    """

    def __init__(self, busy: Callable[[], bool] | None = None) -> None:
        self._stopping = threading.Event()
        self.busy = busy

    def __call__(self, seconds: float) -> None:
        rest = min(seconds, 1.0)
        if self.busy is not None and self.busy():
            rest = min(BUSY_PACE * seconds, BUSY_REST)
        if self._stopping.wait(rest):
            raise StoppedError

    def stop(self) -> None:
        """End the work after the transaction that runs (its owner stops)."""
        self._stopping.set()


@dataclass
class Step:
    """What one action did (or, in a dry run, would do) to one channel."""

    recording: str
    channel: str
    action: str  # reduce or delete
    before: float  # rows older than this (POSIX s)
    operator: str = ""  # reduce: the operator
    rows: int = 0  # rows taken away
    written: int = 0  # rows written in their place (the bins)
    freed: int = 0  # bytes of row data freed (taken away less written)

    def text(self) -> str:
        """One line for an operator (a log line, the CLI)."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.before))
        what = f"reduce to {self.operator}" if self.action == REDUCE else "delete"
        into = f" into {self.written} rows" if self.action == REDUCE else ""
        return (
            f"{self.recording} {self.channel}: {what} rows before {when} UTC: "
            f"{self.rows} rows{into}, {self.freed} bytes freed"
        )


@dataclass(frozen=True)
class Channel:
    """A channel of a recording as the policy sees it."""

    alias: str
    pv: str
    kind: str
    #: rows at or after this time are left as they are (a live collector's ring: its
    #: rows are served raw from memory, so the store keeps them raw until they leave it)
    below: float = math.inf


@dataclass
class Run:
    """One application of the policy to one store."""

    steps: list[Step] = field(default_factory=list)
    file_freed: int = 0  # bytes the file shrank by (VACUUM after deletions)

    @property
    def rows_reduced(self) -> int:
        return sum(s.rows for s in self.steps if s.action == REDUCE)

    @property
    def rows_deleted(self) -> int:
        return sum(s.rows for s in self.steps if s.action == DELETE)

    @property
    def freed(self) -> int:
        return sum(s.freed for s in self.steps)


def due(rule: RetentionRule, kind: str, now: float) -> list[tuple[str, float]]:
    """The actions ``rule`` asks of a channel at ``now``: (action, rows before this time)."""
    actions: list[tuple[str, float]] = []
    if rule.keep is not None:
        actions.append((DELETE, now - rule.keep))
    found = rule.reducer
    if found is not None and rule.raw is not None and kind == "number":
        actions.append((REDUCE, math.floor((now - rule.raw) / found.n) * found.n))
    return actions


def next_due(
    rule: RetentionRule, kind: str, oldest: float, oldest_raw: float, now: float
) -> tuple[str, float]:
    """The rule's next action on a channel's rows and its time (("", NaN): none).

    ``oldest`` is the time of the channel's oldest row, ``oldest_raw`` of its oldest
    raw row. A reduction takes rows once their whole bin is older than ``raw``.
    """
    found: list[tuple[float, str]] = []
    for action, before in due(rule, kind, now):
        age = now - before  # how old rows are when the action takes them
        if action == REDUCE and rule.reducer is not None:
            n = rule.reducer.n
            found.append(((math.floor(oldest_raw / n) + 1) * n + age, f"reduce to {rule.reducer}"))
        else:
            found.append((oldest + age, DELETE))
    if not found:
        return "", math.nan
    at, action = min(found)
    return action, at


def _below(below: float, rule: RetentionRule, action: str) -> float:
    """``below`` for ``action``: a reduction's on a bin edge (a bin is never split)."""
    reducer = rule.reducer
    if action != REDUCE or reducer is None or not math.isfinite(below):
        return below
    return math.floor(below / reducer.n) * reducer.n


class _Overlay:
    """A store's chunks with changes kept in memory: a dry run writes nothing."""

    def __init__(self, store: SpillStore) -> None:
        self.store = store
        self.gone: set[int] = set()
        self.added: dict[int, tuple[Columns, str | None]] = {}
        self.meta: dict[str, object] = {}

    def chunk(self, chunk: int) -> Columns | None:
        return self.added[chunk][0] if chunk in self.added else self.store.chunk(chunk)

    def swap(
        self,
        channel: str,
        remove: list[int],
        add: list[tuple[Columns, str | None]],
        meta: dict[str, object],
    ) -> list[ChunkInfo]:
        for chunk in remove:
            if self.added.pop(chunk, None) is None:
                self.gone.add(chunk)
        infos = []
        for rows, reduced in add:
            if len(rows):
                chunk = -1 - len(self.gone) - len(self.added)  # (ids the store never gives)
                self.added[chunk] = (rows, reduced)
                layout, blob = pack(rows, reduced)
                first, last = float(rows.time.min()), float(rows.time.max())
                infos.append(ChunkInfo(chunk, layout, len(rows), len(blob), first, last))
        self.meta.update(meta)
        return infos


@dataclass
class _Span:
    """A chunk's first and last row times, its rows and bytes, and what it was reduced to."""

    first: float
    last: float
    rows: int
    size: int
    reduced: str | None
    numbers: bool  # packed scalar rows (reducible)


def _span(info: ChunkInfo, first: float | None = None, last: float | None = None) -> _Span:
    """A chunk's span from the index (``first``/``last``: read from its rows instead)."""
    numbers = info.layout != TEXT and json.loads(info.layout).get("shape") == []
    return _Span(
        info.first if first is None else first,
        info.last if last is None else last,
        info.rows,
        info.size,
        info.reduced,
        numbers,
    )


class Engine:
    """Applies ``rules`` to stores; ``pace(seconds)`` is called after each transaction."""

    def __init__(
        self,
        rules: list[RetentionRule],
        pace: Callable[[float], None] | None = None,
        *,
        shrink: bool = True,
    ) -> None:
        """Apply ``rules``, calling ``pace(seconds)`` after each transaction.

        ``shrink``: VACUUM a file a quarter free after deletions (not a live store's:
        VACUUM locks the file for as long as it takes, and flushes must not wait; a live
        store reuses its free pages instead).
        """
        self.rules = rules
        self.pace = pace or (lambda _seconds: None)
        self.shrink = shrink

    def apply(
        self,
        store: SpillStore,
        recording: str,
        name: str,
        channels: list[Channel],
        now: float,
        dry_run: bool = False,
    ) -> Run:
        """Apply the policy to every channel of ``store`` (recording ``name``'s); what it did."""
        run = Run()
        target: SpillStore | _Overlay = _Overlay(store) if dry_run else store
        for channel in channels:
            rule = rule_for(self.rules, name, [channel.pv])
            if rule is None:
                continue
            actions = [
                (action, min(before, _below(channel.below, rule, action)))
                for action, before in due(rule, channel.kind, now)
            ]
            if not actions:
                continue
            spans = self._spans(store, target, channel.alias)
            for action, before in actions:
                step = Step(recording, channel.alias, action, before)
                try:
                    if action == DELETE:
                        self._delete(target, channel.alias, spans, step)
                    else:
                        reducer = rule.reducer
                        assert reducer is not None
                        step.operator = str(reducer)
                        self._reduce(target, channel.alias, spans, step, reducer)
                except StoppedError as stopped:  # what was committed until then
                    stopped.run = run
                    if step.rows:
                        run.steps.append(step)
                        log.info("retention (stopped): %s", step.text())
                    raise
                if step.rows:
                    run.steps.append(step)
                    if not dry_run:
                        log.info("retention: %s", step.text())
        if run.steps and not dry_run and self.shrink:
            run.file_freed = store.compact_file()
        return run

    @staticmethod
    def _spans(store: SpillStore, target: SpillStore | _Overlay, alias: str) -> dict[int, _Span]:
        """The channel's chunks: from the index, or read (chunks of older versions)."""
        spans = {}
        for info in store.chunks(alias):
            first, last = info.first, info.last
            if not (math.isfinite(first) and math.isfinite(last)):
                rows = target.chunk(info.id)
                if rows is None or not len(rows):
                    continue  # damaged: left as it is (its loss was counted when read)
                first, last = float(rows.time.min()), float(rows.time.max())
            spans[info.id] = _span(info, first, last)
        return spans

    def _swap(
        self,
        target: SpillStore | _Overlay,
        alias: str,
        spans: dict[int, _Span],
        remove: list[int],
        add: list[tuple[Columns, str | None]],
        meta: dict[str, object],
    ) -> int:
        """One transaction; the spans follow; the bytes it freed."""
        started = time.monotonic()
        infos = target.swap(alias, remove, add, meta)
        freed = sum(spans.pop(i).size for i in remove)
        for info in infos:
            spans[info.id] = _span(info)
            freed -= info.size
        self.pace(time.monotonic() - started)
        return freed

    def _delete(
        self, target: SpillStore | _Overlay, alias: str, spans: dict[int, _Span], step: Step
    ) -> None:
        """Delete the rows older than ``step.before``, a batch of chunks at a time."""
        while True:
            old = sorted(i for i, s in spans.items() if s.first < step.before)
            if not old:
                return
            batch, total = [], 0
            for chunk in old:
                batch.append(chunk)
                total += spans[chunk].rows
                if total >= BATCH:
                    break
            add: list[tuple[Columns, str | None]] = []
            for chunk in list(batch):
                if spans[chunk].last >= step.before:  # straddles: its newer rows stay
                    rows = target.chunk(chunk)
                    if rows is None:  # damaged: left as it is
                        batch.remove(chunk)
                        spans.pop(chunk)
                        continue
                    keep = rows.time >= step.before
                    step.rows += int((~keep).sum())
                    add.append((rows.select(keep), spans[chunk].reduced))
                else:
                    step.rows += spans[chunk].rows
            step.freed += self._swap(target, alias, spans, batch, add, {})

    def _reduce(
        self,
        target: SpillStore | _Overlay,
        alias: str,
        spans: dict[int, _Span],
        step: Step,
        reducer: Reducer,
    ) -> None:
        """Reduce the raw rows older than ``step.before``, oldest first, bins never split."""
        key = REDUCED + alias
        while True:
            raw = sorted(
                (i for i, s in spans.items() if s.reduced is None and s.numbers),
                key=lambda i: spans[i].first,
            )
            if not raw or spans[raw[0]].first >= step.before:
                return
            batch, total, limit = [], 0, step.before
            for k, chunk in enumerate(raw):
                batch.append(chunk)
                total += spans[chunk].rows
                # bins below the first row left out of the batch are whole in it
                if k + 1 < len(raw):  # (raw is by first row: the next one is the first)
                    following = math.floor(spans[raw[k + 1]].first)
                    limit = min(step.before, following // reducer.n * reducer.n)
                else:
                    limit = step.before
                if total >= BATCH and any(spans[i].first < limit for i in batch):
                    break
            parts = [target.chunk(i) for i in batch]
            rows = concat(*[p for p in parts if p is not None])
            rows = rows.take(np.argsort(rows.time, kind="stable"))
            below = rows.time < limit
            reduced = reduce_rows(rows.select(below), reducer)
            step.rows += int(below.sum())
            step.written += len(reduced)
            meta: dict[str, object] = {key: {"operator": str(reducer), "until": limit}}
            add = [(reduced, str(reducer)), (rows.select(~below), None)]
            step.freed += self._swap(target, alias, spans, batch, add, meta)
            if not below.any():
                return  # (cannot happen: the batch holds a row below limit) never loop
