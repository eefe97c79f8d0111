"""A factory's recordings as PVs: Recordings, RecordedChannels, Query, Purge.

:class:`RecordingPvs` is the factory's part that serves the recordings under its data
directory, live (a collector of the factory runs) and retired (kept after its collector
was destroyed), and answers queries of retired ones on a bounded read pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.collector import parse_query
from epics_collector.core import (
    AttrR,
    BusyError,
    Caller,
    Int,
    Operation,
    Part,
    ReadPool,
    RpcError,
    Severity,
    Table,
    rpc,
    scan,
)
from epics_collector.factory._config import FactoryConfig
from epics_collector.factory._names import FactoryPv
from epics_collector.factory._recordings import Listed, Recordings
from epics_collector.factory._retention import next_action

log = logging.getLogger(__name__)
Report = Callable[[str, Severity], None]
RECORDING_COLUMNS: dict[str, Any] = {
    "id": str,
    "name": str,
    "prefix": str,
    "pvs": str,
    "first": np.float64,
    "last": np.float64,
    "rows": np.int64,
    "bytes": np.int64,
    "state": str,
    "created": np.float64,
    "destroyed": np.float64,
    "reduced": str,
    "oldest_raw": np.float64,
    "next_action": str,
    "next_time": np.float64,
}
RECORDED_CHANNEL_COLUMNS: dict[str, Any] = {
    "recording": str,
    "alias": str,
    "pv": str,
    "kind": str,
    "rows": np.int64,
    "first": np.float64,
    "last": np.float64,
    "state": str,
    "reduced": str,
    "reduced_until": np.float64,
}


def _oldest_raw(listed: Listed) -> float:
    """The oldest raw row's time of a recording's channels (NaN: no rows)."""
    times = [c.oldest_raw for c in listed.summary.channels if c.rows]
    return min(times) if times else float("nan")


class RecordingPvs(Part):
    """Lists the recordings, reads retired ones, and purges them on request."""

    recordings_table = AttrR(
        Table(columns=RECORDING_COLUMNS),
        name=FactoryPv.RECORDINGS,
        description=(
            "One row per recording, live (a collector of this factory) or retired (kept "
            "after its collector was destroyed): id (what Query and Purge take), name, "
            "prefix, pvs (comma-separated), first and last (POSIX s), rows, bytes on disk, "
            "state (live, retired), created and destroyed (POSIX s), reduced (the "
            "operators its oldest rows were reduced to by the retention policy), "
            "oldest_raw (POSIX s from which rows are raw), next_action (the policy's next: "
            "'reduce to mean_60', 'delete'; '' none) and next_time (when, POSIX s)"
        ),
    )
    recorded_channels = AttrR(
        Table(columns=RECORDED_CHANNEL_COLUMNS),
        name=FactoryPv.RECORDED_CHANNELS,
        description=(
            "One row per channel of every recording: recording (its id), alias, pv, kind, "
            "rows, first and last (POSIX s), state (live, retired), reduced (the operator "
            "its rows before reduced_until, POSIX s, were reduced to; '' none)"
        ),
    )
    query_busy = AttrR(
        Int(),
        name=FactoryPv.QUERY_BUSY,
        description=(
            "Query calls answered busy because more were asked at once than reads allows "
            "(told to retry); MINOR alarm when > 0"
        ),
    )

    def __init__(
        self,
        config: FactoryConfig,
        data_dir: Path,
        live: Callable[[], dict[str, str]],
        report: Report,
        call_soon: Callable[..., None],
    ) -> None:
        """Serve the recordings under ``data_dir``.

        ``live()`` names the devices that run (name -> type); ``call_soon`` hands work
        to the event loop from a read worker.
        """
        self.config, self._live, self._report, self._call_soon = config, live, report, call_soon
        #: Live and retired recordings under the data directory (file work in threads).
        self.recordings = Recordings(data_dir, config.recordings_cached, self._recording_damaged)
        self.reads = ReadPool(config.reads, name="recordings")
        self.query_busy.set(0)
        self._list_recordings([])

    @rpc(name=FactoryPv.QUERY, access=Operation.READ, with_caller=True)
    async def query(
        self,
        recording: str = "",
        alias: str = "",
        start: Any = "",
        end: Any = "",
        points: Any = "",
        operator: Any = "",
        after: Any = "",
        epoch: Any = "",
        *,
        caller: Caller,
    ) -> dict[str, Any]:
        """A retired recording's history as an NTTable: recording (its id), then as Query.

        The arguments after ``recording`` are a collector's Query's (alias or source PV,
        start, end, points, operator, and a page's cursor), with the same answers;
        computed on the read pool (config ``reads``), answered "busy" beyond it.
        """
        arguments = {"start": start, "end": end, "points": points, "operator": operator}
        arguments |= {"after": after, "epoch": epoch}
        try:
            return await self.reads.run(
                caller.host or "local", self._read, str(recording), str(alias), arguments
            )
        except BusyError:
            self.query_busy.set(self.reads.busy, severity=Severity.MINOR)
            raise

    def _read(self, recording: str, alias: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Compute a Query of a retired recording (on a read worker)."""
        stored, alias = self.recordings.channel(recording, alias)
        request = parse_query(arguments, stored.span(alias), stored.kind(alias))
        return stored.query(alias, request, time.monotonic() + self.config.reads.timeout)

    def _recording_damaged(self, recording: str, rows: int) -> None:
        """A retired recording read with damaged chunks (a read worker): say so, loudly."""
        text = (
            f"retired recording {recording}: {rows} rows are in damaged chunks and cannot "
            "be read; the rest is served"
        )
        log.error(text)
        self._call_soon(self._report, text, Severity.MAJOR)

    @rpc(name=FactoryPv.PURGE, access=Operation.DELETE, with_caller=True)
    async def purge(self, recording: str = "", name: str = "", *, caller: Caller) -> Any:
        """Delete a retired recording's files: recording (its id), optionally name.

        Needs the ``delete`` right. Answers with the rows and bytes removed; a live
        recording (a collector that runs) is refused: destroy it first.
        """
        recording = str(recording)
        if name and recording.partition(".")[0] != name:
            raise RpcError(f"{recording[:80]!r} is not a recording of {str(name)[:40]!r}")
        if recording in self._live():
            raise RpcError(
                f"{recording} is a live recording (its collector runs): destroy the "
                "collector first; its recording is then retired and can be purged"
            )
        removed = await asyncio.to_thread(self.recordings.purge, recording)
        await self.refresh()
        who = caller.who
        text = f"purged {recording}: {removed['rows']} rows, {removed['bytes']} bytes (by {who})"
        self._report(text, Severity.NO_ALARM)
        return {key: [value] for key, value in removed.items()}

    @scan(10.0)
    async def list_recordings(self) -> None:
        """Refresh Recordings and RecordedChannels (live rows grow)."""
        await self.refresh()

    async def refresh(self) -> None:
        found = await asyncio.to_thread(self.recordings.catalogue, self._live())
        self._list_recordings(found)

    def _list_recordings(self, found: list[Listed]) -> None:
        """Post the two tables of ``found`` (on the event loop)."""
        now = time.time()
        upcoming = [next_action(self.config, r, now) for r in found]
        self.recordings_table.set(
            {
                "id": [r.id for r in found],
                "name": [r.name for r in found],
                "prefix": [r.prefix for r in found],
                "pvs": [",".join(c.pv for c in r.summary.channels) for r in found],
                "first": [r.summary.first for r in found],
                "last": [r.summary.last for r in found],
                "rows": [r.summary.rows for r in found],
                "bytes": [r.summary.bytes for r in found],
                "state": [r.state for r in found],
                "created": [r.time("created") for r in found],
                "destroyed": [r.time("destroyed") for r in found],
                "reduced": [
                    ",".join(sorted({c.reduced for c in r.summary.channels if c.reduced}))
                    for r in found
                ],
                "oldest_raw": [_oldest_raw(r) for r in found],
                "next_action": [action for action, _ in upcoming],
                "next_time": [at for _, at in upcoming],
            }
        )
        channels = [(r, c) for r in found for c in r.summary.channels]
        self.recorded_channels.set(
            {
                "recording": [r.id for r, _ in channels],
                "alias": [c.alias for _, c in channels],
                "pv": [c.pv for _, c in channels],
                "kind": [c.kind for _, c in channels],
                "rows": [c.rows for _, c in channels],
                "first": [c.first for _, c in channels],
                "last": [c.last for _, c in channels],
                "state": [r.state for r, _ in channels],
                "reduced": [c.reduced for _, c in channels],
                "reduced_until": [c.reduced_until for _, c in channels],
            }
        )

    def close(self) -> None:
        """Stop the read pool (the factory stops)."""
        self.reads.close()
