"""Which collectors recorded which PV, and their rows read page by page over PVAccess.

The archive follows factories (their ``Devices`` table: every collector they run) and
single collectors. A PV is named by its source PV name (without ``pva://``/``ca://``);
a pushed or merged channel by its alias. Rows come from each collector's ``Query``
RPC with ``operator=page``: the newest row at or before the start, then up to
:data:`PAGE_ROWS` rows a call, so a reader holds one page per collector at a time and
the collector's recorder lock is held only per chunk (see :mod:`storage._reads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from epics_collector.client import ClientError, Connection
from epics_collector.collector import CollectorPv
from epics_collector.core import DevicePv
from epics_collector.factory import FactoryPv
from epics_collector.pva import metadata
from epics_collector.retrieval._pb import PayloadType
from epics_collector.retrieval._samples import Samples, merge
from epics_collector.storage import MAX_POINTS

PAGE_ROWS = 50_000
EDGE = 1e-6  # seconds kept off a bin's upper edge (a row there is the next bin's)
METADATA_AGE = 60.0  # seconds a source's display metadata is kept
log = logging.getLogger(__name__)


class UnknownPvError(LookupError):
    """No collector followed has recorded the PV."""


class UnservedError(ValueError):
    """The PV is recorded, but of a kind the API does not serve (images)."""


@dataclass(frozen=True)
class Recording:
    """One collector's channel of a PV."""

    collector: str  # the collector's prefix (a retired recording: its factory's)
    alias: str
    source: str  # the channel's source as configured (pva://X, ca://X, X, push:...)
    kind: str  # number, string, waveform, image
    recording: str = ""  # a retired recording's id (read through its factory's Query)
    removed: bool = False  # a channel its (live) collector no longer records: rows kept
    paused: bool = False  # removed as a pause (archiving resumes with an Add)
    reduced: str = ""  # retired: the operator its rows before reduced_until were reduced to
    reduced_until: float = float("nan")

    def reduced_in(self, start: float) -> str:
        """The operator of the reduced rows a read from ``start`` meets ("" none)."""
        return self.reduced if self.reduced and start < self.reduced_until else ""

    @property
    def name(self) -> str:
        """The PV name the API serves it under."""
        scheme, _, rest = self.source.partition("://")
        if rest:
            return rest if scheme in ("pva", "ca") else self.alias
        return (
            self.alias
            if self.source.startswith(("push:", "merge:")) or not self.source
            else self.source
        )


@dataclass(frozen=True)
class ChannelState:
    """A live recording's channel as its collector's ``Channels`` last said."""

    connected: bool
    count: int  # rows since the collector's last Clear
    last_update: float  # source time of the newest update, POSIX s (NaN: none)
    since: float  # POSIX s of the last connection change (NaN: never connected)
    connects: int  # times the source connected
    reason: str  # the source's word on its last connection change
    added: float  # POSIX s the channel was made (NaN: not said)
    period: float  # seconds between rows of a periodic compress (NaN: rows follow updates)


def _channel_states(table: Any) -> list[ChannelState]:
    """The rows of a ``Channels`` table as states (columns a collector lacks: NaN, 0)."""
    names = set(table.keys())
    rows = len(table["alias"])

    def column(name: str, default: object) -> list[Any]:
        return list(table[name]) if name in names else [default] * rows

    return [
        ChannelState(bool(c), int(n), float(t), float(s), int(k), str(r), float(a), float(p))
        for c, n, t, s, k, r, a, p in zip(
            column("connected", False),
            column("count", 0),
            column("last_update", np.nan),
            column("since", np.nan),
            column("connects", 0),
            column("reason", ""),
            column("added", np.nan),
            column("period", np.nan),
            strict=True,
        )
    ]


def _page_samples(table: dict[str, Any]) -> Samples:
    """A page of a ``Query operator=page`` as samples (array rows: one per row)."""
    time_ = np.asarray(table["time"], np.float64)
    if "elements" in table:
        counts = np.asarray(table["elements"], np.int64)
        flat = np.asarray(table["values"])
        if len(counts) and (counts == counts[0]).all():
            value: np.ndarray = flat.reshape(len(counts), int(counts[0]))
        else:
            value = np.empty(len(counts), object)
            value[:] = np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []
    else:
        value = np.asarray(table.get("value", np.zeros(len(time_))))
    if "ns" in table:  # the exact source timestamps (collectors that keep them)
        return Samples.from_ns(table["ns"], value, table["severity"], table["status"])
    return Samples.from_seconds(time_, value, table["severity"], table["status"])


class Archive:
    """The PVs of the collectors of ``factories`` and of ``collectors``, kept current."""

    def __init__(
        self,
        connection: Connection,
        factories: Iterable[str] = (),
        collectors: Iterable[str] = (),
        timeout: float = 10.0,
        page_rows: int = PAGE_ROWS,
    ) -> None:
        self.connection, self.page_rows = connection, page_rows
        self.factories, self.collectors = list(factories), list(collectors)
        self.timeout = timeout
        self.recordings: dict[str, list[Recording]] = {}
        self._names: tuple[dict[str, list[Recording]], list[str]] = ({}, [])  # sorted keys
        self.problems: dict[str, str] = {}  # prefix -> why it cannot be read now
        self.states: dict[str, str] = {}  # collector prefix -> its State when last read
        #: (collector prefix, alias) -> the channel's row of Channels when last read
        self.channels: dict[tuple[str, str], ChannelState] = {}
        self._known: dict[str, list[Recording]] = {}  # prefix -> recordings last read
        self._metadata: dict[str, tuple[float, dict[str, str], PayloadType | None]] = {}
        self._elements: dict[str, int] = {}  # pv -> elements of its source's value, as read

    # discovery --------------------------------------------------------------------------

    async def _collectors(self) -> tuple[list[str], list[Recording]]:
        """The collectors followed, and the retired recordings of the factories."""
        found, retired = list(self.collectors), []
        for factory in self.factories:
            try:
                table = await self.connection.get(factory + FactoryPv.DEVICES, timeout=self.timeout)
                kept = await self.connection.get(
                    factory + FactoryPv.RECORDED_CHANNELS, timeout=self.timeout
                )
            except (ClientError, TimeoutError) as error:
                self.problems[factory] = f"factory {factory} does not answer: {error}"
                retired += [r for r in self._known.get(factory, []) if r.recording]
                continue
            self.problems.pop(factory, None)
            for kind, prefix in zip(table["type"], table["prefix"], strict=True):
                if str(kind) == "collector":
                    found.append(str(prefix))
            columns = (kept[c] for c in ("recording", "alias", "pv", "kind", "state"))
            rows = len(kept["recording"])
            reduced = kept["reduced"] if "reduced" in kept.keys() else [""] * rows
            until = kept["reduced_until"] if "reduced_until" in kept.keys() else [0.0] * rows
            mine = [
                Recording(
                    factory,
                    str(alias),
                    str(pv),
                    str(kind),
                    str(recording),
                    reduced=str(operator),
                    reduced_until=float(before),
                )
                for (recording, alias, pv, kind, state), operator, before in zip(
                    zip(*columns, strict=True), reduced, until, strict=True
                )
                if str(state) == "retired"
            ]
            self._known[factory] = mine
            retired += mine
        return list(dict.fromkeys(found)), retired

    async def _recordings_of(self, prefix: str) -> list[Recording]:
        table = await self.connection.get(prefix + CollectorPv.CHANNELS, timeout=self.timeout)
        with contextlib.suppress(ClientError, TimeoutError):
            self.states[prefix] = str(
                await self.connection.get(prefix + DevicePv.STATE, timeout=self.timeout)
            )
        found = [
            Recording(prefix, str(alias), str(pv), str(kind))
            for alias, pv, kind in zip(table["alias"], table["pv"], table["kind"], strict=True)
        ]
        for recording, state in zip(found, _channel_states(table), strict=True):
            self.channels[(prefix, recording.alias)] = state
        with contextlib.suppress(ClientError, TimeoutError, KeyError):  # (older collectors)
            gone = await self.connection.get(prefix + CollectorPv.REMOVED, timeout=self.timeout)
            paused = list(gone["paused"]) if "paused" in gone.keys() else [False] * len(gone["pv"])
            columns = zip(gone["alias"], gone["pv"], gone["kind"], paused, strict=True)
            found += [
                Recording(prefix, str(alias), str(pv), str(kind), removed=True, paused=bool(p))
                for alias, pv, kind, p in columns
            ]
        return found

    async def _live(self, prefix: str) -> list[Recording]:
        """A collector's channels; those known before while it does not answer.

        A collector that is restarting is still listed by its factory: its PVs stay
        served (an answer fails while it is down, and works as soon as it is back),
        never "not recorded".
        """
        try:
            found = await self._recordings_of(prefix)
        except (ClientError, TimeoutError, ValueError, KeyError) as error:
            self.problems[prefix] = f"collector {prefix} cannot be read now: {error}"
            return self._known.get(prefix, [])
        self.problems.pop(prefix, None)
        self._known[prefix] = found
        return found

    async def refresh(self) -> None:
        """Find every collector and its channels, and the retired recordings, now."""
        prefixes, retired = await self._collectors()
        live = await asyncio.gather(*(self._live(prefix) for prefix in prefixes))
        for gone in set(self._known) - set(prefixes) - set(self.factories):
            self._known.pop(gone, None)  # destroyed: its recording is retired, if kept
            self.states.pop(gone, None)
        kept = {(r.collector, r.alias) for found in live for r in found}
        for key in set(self.channels) - kept:
            del self.channels[key]
        recordings: dict[str, list[Recording]] = {}
        for recording in [r for found in live for r in found] + retired:
            recordings.setdefault(recording.name, []).append(recording)
        await self._refresh_metadata(recordings)  # before a new PV is listed
        self.recordings = recordings

    async def follow(self, period: float = 5.0) -> None:
        """Refresh every ``period`` seconds, for as long as the task runs."""
        while True:
            try:
                await self.refresh()
            except Exception:  # keep serving what is known; say why in the log
                log.exception("refreshing the list of recorded PVs failed")
            await asyncio.sleep(period)

    def status(self, pv: str) -> str:
        """The EAA's status of ``pv``: recorded now, by a stopped collector, or no longer.

        "Being archived" while a collector of it records, "Paused" while its collectors
        run but do not record, "Not being archived" when only retired recordings or
        removed channels (or none) hold it: their rows are still served.
        """
        live = [r for r in self.recordings.get(pv, []) if not (r.recording or r.removed)]
        if any(self.states.get(r.collector) == "Recording" for r in live):
            return "Being archived"
        return "Paused" if live else "Not being archived"

    def names(self) -> list[str]:
        """The PV names recorded, sorted (as of the last refresh; sorted once a refresh)."""
        if self._names[0] is not self.recordings:
            self._names = (self.recordings, sorted(self.recordings))
        return self._names[1]

    def recorded(self, pv: str) -> list[Recording]:
        """Every recording of ``pv``; UnknownPvError or UnservedError if none can be read."""
        found = self.recordings.get(pv)
        if not found:
            raise UnknownPvError(f"no collector followed here has recorded {pv!r}")
        readable = [r for r in found if r.kind != "image"]
        if not readable:
            raise UnservedError(
                f"{pv} is an image channel: the retrieval API serves scalars and waveforms; "
                "read images with the collector's own PVs or an export"
            )
        return readable

    # metadata -------------------------------------------------------------------------

    def metadata(self, pv: str) -> tuple[dict[str, str], PayloadType | None]:
        """Headers (EGU, PREC, limits, ENUM_n) and native type of ``pv``'s source.

        As last read: at discovery, then every :data:`METADATA_AGE` s; never in a
        request's path.
        """
        cached = self._metadata.get(pv)
        return (cached[1], cached[2]) if cached is not None else ({}, None)

    async def _read_metadata(self, pv: str, recording: Recording) -> None:
        scheme, _, rest = recording.source.partition("://")
        if not (scheme in ("pva", "ca") if rest else recording.name == recording.source):
            self._metadata[pv] = (time.monotonic(), {}, None)  # pushed or merged: no source
            return
        try:
            value = await self.connection.get_value(pv, timeout=1.0)
        except Exception as error:  # a source that is down: keep what was known
            log.debug("no metadata for %s: %s", pv, error)
            headers, native = self.metadata(pv)
            self._metadata[pv] = (time.monotonic(), headers, native)
            return
        headers, native = _headers(value)
        self._metadata[pv] = (time.monotonic(), headers, native)
        self._elements[pv] = _elements(value)

    def elements(self, pv: str) -> int | None:
        """How many elements ``pv``'s source value had when last read (None: not read)."""
        return self._elements.get(pv)

    async def _refresh_metadata(self, recordings: dict[str, list[Recording]]) -> None:
        now = time.monotonic()
        stale = [
            (pv, found[0])
            for pv, found in recordings.items()
            if pv not in self._metadata or now - self._metadata[pv][0] > METADATA_AGE
        ]
        limit = asyncio.Semaphore(32)

        async def read(pv: str, recording: Recording) -> None:
            async with limit:
                await self._read_metadata(pv, recording)

        await asyncio.gather(*(read(pv, recording) for pv, recording in stale))

    # rows -----------------------------------------------------------------------------

    async def count(self, pv: str, start: float, end: float) -> int:
        """How many rows the recordings of ``pv`` hold in [start, end] (before merging)."""
        total = 0
        for recording in self.recorded(pv):
            table = await self._query(recording, start, end, 1, "count")
            total += int(np.sum(table["value"]))
        return total

    async def _query(
        self,
        recording: Recording,
        start: float,
        end: float,
        points: int,
        operator: str,
        **more: str,
    ) -> Any:
        arguments = {
            "alias": recording.alias,
            "start": repr(start),
            "end": repr(end),
            "points": str(points),
            "operator": operator,
            **more,
        }
        if recording.recording:  # retired: its factory answers with the same Query
            arguments["recording"] = recording.recording
            return await self.connection.call(recording.collector + FactoryPv.QUERY, arguments)
        return await self.connection.call(recording.collector + CollectorPv.QUERY, arguments)

    async def summaries(
        self, recording: Recording, start: float, end: float, width: int
    ) -> dict[int, tuple[list[float], int]]:
        """Per bin ``s // width``: [mean, std, min, max, count] and the highest severity.

        Of the rows in [start, end], computed by the collector (its ``minmax`` Query).

        Bins are aligned to multiples of ``width`` seconds: the first and last bins are
        asked alone (they may be partial), the full ones between in one Query.
        """
        first, last = int(start) // width, int(end) // width
        if first == last:
            segments = [(start, end, 1, first)]
        else:
            segments = [(start, (first + 1) * width - EDGE, 1, first)]
            for lo in range(first + 1, last, MAX_POINTS):  # full bins, a Query's worth each
                hi = min(lo + MAX_POINTS, last)
                segments.append((lo * width, hi * width - EDGE, hi - lo, lo))
            segments.append((last * width, end, 1, last))
        found: dict[int, tuple[list[float], int]] = {}
        for begin, finish, points, base in segments:
            table = await self._query(recording, begin, finish, points, "minmax")
            step = (finish - begin) / points
            for k in range(len(table["time"])):
                offset = (float(table["time"][k]) - begin) / step - 0.5 if step else 0.0
                number = base + int(round(offset))  # (a segment of one instant: its bin)
                stats = [float(table[c][k]) for c in ("value", "std", "min", "max", "count")]
                found[number] = (stats, int(table["severity"][k]))
        return found

    async def before(self, recording: Recording, start: float) -> Samples:
        """The newest row at or before ``start`` (none: empty)."""
        page = _page_samples(await self._query(recording, start, start, 1, "page"))
        return page.take(page.time <= start) if len(page) else page

    async def _pages(
        self, recording: Recording, start: float, end: float
    ) -> AsyncIterator[Samples]:
        """A recording's rows from the newest at or before ``start`` to ``end``, by page.

        Pages go on from the cursor of the one before (by position, never by time), so
        every row comes once; a page the collector cannot give (it restarted, was
        cleared, or overwrote rows not yet read) raises, and the answer fails.
        """
        cursor: dict[str, str] = {}
        while True:
            table = await self._query(recording, start, end, self.page_rows, "page", **cursor)
            page = _page_samples(table)
            if len(page):
                yield page
            if len(page) < self.page_rows:
                return
            cursor = {"epoch": str(int(table["epoch"][0])), "after": str(int(table["index"][-1]))}

    async def rows(self, pv: str, start: float, end: float) -> AsyncIterator[Samples]:
        """Rows of every recording of ``pv`` merged in time order, one per timestamp.

        Begins with the newest row at or before ``start``.
        """
        streams = [self._pages(r, start, end) for r in self.recorded(pv)]
        async for part in merge_streams(streams):
            yield part


async def merge_streams(streams: list[AsyncIterator[Samples]]) -> AsyncIterator[Samples]:
    """Time-ordered streams merged into one, page by page.

    Every row of a stream is kept, rows of equal stamps included; where several streams
    hold one timestamp, the rows of the first stream that holds it are kept (see
    :func:`merge`).
    """
    buffers: list[Samples | None] = [None] * len(streams)
    done = [False] * len(streams)
    last: tuple[int, int] | None = None  # the stamp last sent, and its stream
    while True:
        for k, stream in enumerate(streams):
            if not done[k] and (buffers[k] is None or not len(buffers[k])):  # type: ignore[arg-type]
                try:
                    buffers[k] = await anext(stream)
                except StopAsyncIteration:
                    done[k] = True
        if not any(b is not None and len(b) for b in buffers):
            return
        horizons = [
            int(b.stamps()[-1])
            for k, b in enumerate(buffers)
            if b is not None and len(b) and not done[k]
        ]
        horizon = min(horizons) if horizons else None
        ready = []
        for k, buffer in enumerate(buffers):
            if buffer is None or not len(buffer):
                ready.append(Samples.empty())
                continue
            stamps = buffer.stamps()
            take = stamps <= horizon if horizon is not None else np.ones(len(buffer), bool)
            ready.append(buffer.take(take))
            buffers[k] = buffer.take(~take)
        part, source = merge(ready)
        if last is not None and len(part):  # another stream's rows of the stamp last sent
            stamps = part.stamps()
            keep = (stamps > last[0]) | ((stamps == last[0]) & (source == last[1]))
            part, source = part.take(keep), source[keep]
        if len(part):
            last = (int(part.stamps()[-1]), int(source[-1]))
            yield part


def payload_type(kind: str, values: np.ndarray, native: PayloadType | None) -> PayloadType:
    """The PB type of a recording's rows: the source's own type when it is known."""
    if kind == "string":
        return PayloadType.SCALAR_STRING
    if kind == "waveform":
        if native is not None and native.name.startswith("WAVEFORM"):
            return native
        return PayloadType.WAVEFORM_DOUBLE
    if (
        native is not None
        and native.name.startswith("SCALAR")
        and native is not PayloadType.SCALAR_STRING
    ):
        return native
    return PayloadType.SCALAR_DOUBLE


_SCALARS = {
    "d": PayloadType.SCALAR_DOUBLE,
    "f": PayloadType.SCALAR_FLOAT,
    "l": PayloadType.SCALAR_INT,
    "i": PayloadType.SCALAR_INT,
    "L": PayloadType.SCALAR_INT,
    "I": PayloadType.SCALAR_INT,
    "h": PayloadType.SCALAR_SHORT,
    "H": PayloadType.SCALAR_SHORT,
    "b": PayloadType.SCALAR_BYTE,
    "B": PayloadType.SCALAR_BYTE,
    "s": PayloadType.SCALAR_STRING,
}


def _elements(value: Any) -> int:
    """Elements of a source Value's ``value`` (1 for a scalar or an enum)."""
    try:
        field = value["value"]
    except (KeyError, TypeError):
        return 1
    return len(field) if isinstance(field, (np.ndarray, list)) else 1


def _headers(value: Any) -> tuple[dict[str, str], PayloadType | None]:
    """EAA headers of a source PV's (raw) value, and its native payload type."""
    found = metadata(value)
    headers = {"EGU": found.units} if found.units is not None else {}
    if found.precision is not None:
        headers["PREC"] = str(found.precision)
    headers |= {name: str(limit) for name, limit in found.limits.items()}
    if found.choices is not None:
        for index, label in enumerate(found.choices):
            headers[f"ENUM_{index}"] = label
        return headers, PayloadType.SCALAR_ENUM
    native: PayloadType | None = None
    code = value.type()["value"]
    if isinstance(code, str):
        if code.startswith("a"):
            scalar = _SCALARS.get(code[1:])
            if scalar is not None:
                native = PayloadType[scalar.name.replace("SCALAR", "WAVEFORM")]
        else:
            native = _SCALARS.get(code)
    return headers, native
