"""A collector's Query RPC: part of a channel's history (or a snapshot's) as a table.

:class:`Queries` is the collector's part that owns the read pool the queries run on and
the count of those it refused because too many were asked at once (QueryBusy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._history import History
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._recorder import Channel
from epics_collector.collector._triggers import TriggerWindows
from epics_collector.collector._views import parse_query
from epics_collector.core import (
    AttrR,
    BusyError,
    Caller,
    Int,
    Operation,
    Part,
    ReadPool,
    Severity,
    listed,
    rpc,
)
from epics_collector.storage import Columns, run_query

Report = Callable[[str, Severity], None]
REFUSALS_SAID_EVERY = 10.0  # seconds: Message says refused queries at most this often


class Queries(Part):
    """Answers Query calls on a read pool, bounded per client host."""

    query_busy = AttrR(
        Int(),
        name=CollectorPv.QUERY_BUSY,
        description=(
            "Query calls answered busy because more were asked at once than reads allows "
            "(told to retry); MINOR alarm when > 0, and a MINOR Message at most every 10 s"
        ),
    )

    def __init__(
        self,
        config: CollectorConfig,
        history: History,
        triggers: TriggerWindows | None,
        report: Report,
    ) -> None:
        self.config, self.history, self.triggers, self._report = (
            config,
            history,
            triggers,
            report,
        )
        self.reads = ReadPool(config.reads, name="query", arrivals=lambda: history.arrivals)
        self._refusals_said = -math.inf  # when Message last said queries were refused
        self.query_busy.set(0)

    @rpc(name=CollectorPv.QUERY, access=Operation.READ, with_caller=True)
    async def query(
        self,
        alias: str = "",
        start: Any = "",
        end: Any = "",
        points: Any = "",
        operator: Any = "",
        snapshot: Any = "",
        after: Any = "",
        epoch: Any = "",
        *,
        caller: Caller,
    ) -> dict[str, Any]:
        """Part of a history as an NTTable: alias, start, end (POSIX s), points, operator.

        ``operator=page`` pages by position: each page's ``index`` and ``epoch`` columns
        are the cursor the next page gives as ``after`` (the last index) and ``epoch``.

        Computed on the read pool (config reads): at most reads.per_host queries of one
        client host at once, then "busy, retry" (counted in QueryBusy); an error goes
        back to the client only.
        """
        channel = self._named_channel(str(alias))
        arguments = {
            "start": start,
            "end": end,
            "points": points,
            "operator": operator,
            "after": after,
            "epoch": epoch,
        }
        try:
            return await self.reads.run(
                caller.host or "local", self._query, channel, arguments, str(snapshot).strip()
            )
        except BusyError:
            self._count_busy()
            raise

    def _query(self, channel: Channel, arguments: dict[str, Any], snapshot: str) -> Any:
        """Compute a Query (on a read worker; the recorder's lock only per chunk)."""
        kind = channel.kind
        if snapshot:
            rows = self._snapshot_rows(snapshot, channel.alias)
            span = (float(rows.time[0]), float(rows.time[-1])) if len(rows) else (0.0, 0.0)
            return run_query([rows], parse_query(arguments, span, kind), kind)
        request = parse_query(arguments, self.history.span(channel), kind)
        deadline = time.monotonic() + self.config.reads.timeout
        return self.history.query(channel, request, deadline)

    def _count_busy(self) -> None:
        """QueryBusy (MINOR), and Message at most every 10 s: a flood is worth a look."""
        self.query_busy.set(self.reads.busy, severity=Severity.MINOR)
        now = time.monotonic()
        if now - self._refusals_said >= REFUSALS_SAID_EVERY:
            self._refusals_said = now
            limits = self.config.reads
            self._report(
                f"queries answered busy ({self.reads.busy} so far, see QueryBusy): more were "
                f"asked at once than reads allows ({limits.per_host} per host, "
                f"{limits.workers + limits.queue} in all); those readers were told to retry",
                Severity.MINOR,
            )

    def _named_channel(self, name: str) -> Channel:
        """A channel by alias or by source PV name (a clear error otherwise)."""
        found = self.history.by_alias.get(name)
        if found is not None:
            return found
        for channel in self.history.channels:
            if name == channel.config.pv:
                return channel
        aliases = listed([c.alias for c in self.history.channels])
        raise ValueError(f"no channel {name!r}; channels: {aliases}")

    def _snapshot_rows(self, snapshot: str, alias: str) -> Columns:
        found = None
        if self.triggers is not None and snapshot.strip().isdigit():
            found = next((s for s in self.triggers.snapshots if s.id == int(snapshot)), None)
        if found is None:
            raise ValueError(f"no snapshot {snapshot!r} (see Snapshots)")
        return found.rows.get(alias, Columns.empty())

    def close(self) -> None:
        """Stop the read pool (the device stops)."""
        self.reads.close()
