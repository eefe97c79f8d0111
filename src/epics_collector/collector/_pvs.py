"""The PVs of one recorded channel, by kind; history PVs are computed only while watched.

| kind | history PVs |
|---|---|
| number, string | ``Value`` (1-D array), ``Time``, ``Table`` (time, value, severity, status) |
| waveform | ``Value`` (NTNDArray, rows x length), ``Time``, ``Table`` (time, severity, status) |
| image | ``Frame`` (NTNDArray of the frame at ``FrameIndex``), ``FrameIndex`` (writable; -1 =
  newest, 0 = oldest), ``Time``, ``Table`` (time, severity, status) |

Every kind also has ``Tail`` (the newest ``tail`` rows of ``Table``, for live displays);
number channels have the ``View:*`` PVs (:class:`~epics_collector.collector._views.ChannelView`).
A channel of kind ``auto`` whose source has not said its type yet has a number's PVs
(the common case: nothing changes when it is found to be one); found to be another kind,
its PVs are made again (:meth:`ChannelPvFamily.reset`), and clients reconnect to the PVs
of that kind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from epics_collector.collector._history import History
from epics_collector.collector._names import ChannelPv
from epics_collector.collector._recorder import Channel
from epics_collector.collector._views import DEFAULT_POINTS, ChannelView
from epics_collector.core import (
    PVI,
    AttrR,
    AttrRW,
    Bool,
    Int,
    NDArray,
    Reading,
    Severity,
    Status,
    Table,
    Waveform,
    pvi_attr,
    pvi_entries,
)

SCALAR_DTYPES: dict[str, Any] = {"number": np.float64, "string": str}
ROW_COLUMNS = {"time": np.float64, "severity": np.int8, "status": np.int8}


def layout(channel: Channel) -> str:
    """The kind whose PVs a channel serves: an auto channel's until found, a number's."""
    kind = channel.kind
    return "number" if kind == "auto" else kind


class ChannelPvs:
    """One channel's PVs (:attr:`attrs`); keeps the watched ones current."""

    def __init__(
        self,
        history: History,
        channel: Channel,
        tail: int = DEFAULT_POINTS,
        prefix: Callable[[], str] = str,
    ):
        self.recorded, self.channel, self.tail_rows = history, channel, tail
        alias, kind, pv = channel.alias, layout(channel), channel.config.pv
        self.kind = kind  # (an auto channel's PVs are made again if it is not a number)
        self.value: AttrR[Any] | None = None
        self.frame: AttrR[Any] | None = None
        self.frame_index: AttrRW[Int] | None = None
        columns = dict(ROW_COLUMNS)
        if kind in SCALAR_DTYPES:
            dtype = SCALAR_DTYPES[kind]
            self.value = AttrR(
                Waveform(dtype=dtype),
                name=f"{alias}:{ChannelPv.VALUE}",
                description=f"Recorded values of {pv}, oldest first",
            )
            columns = {"time": np.float64, "value": dtype, "severity": np.int8, "status": np.int8}
        elif kind == "waveform":
            self.value = AttrR(
                NDArray(dtype=None),
                name=f"{alias}:{ChannelPv.VALUE}",
                description=f"Recorded arrays of {pv}: rows x length, oldest first",
            )
        else:
            self.frame = AttrR(
                NDArray(dtype=None),
                name=f"{alias}:{ChannelPv.FRAME}",
                description=f"The recorded frame of {pv} at FrameIndex",
            )
            self.frame_index = AttrRW(
                Int(),
                name=f"{alias}:{ChannelPv.FRAME_INDEX}",
                description="Frame shown: 0 oldest, -1 newest",
            )
            self.frame_index.reading = Reading(-1, time.time())
            self.frame_index.put_handler = self._select_frame
        self.time = AttrR(
            Waveform(),
            name=f"{alias}:{ChannelPv.TIME}",
            description="Source timestamps, POSIX seconds",
        )
        self.table = AttrR(
            Table(columns=columns),
            name=f"{alias}:{ChannelPv.TABLE}",
            description=f"History rows: {', '.join(columns)}",
        )
        self.tail = AttrR(
            Table(columns=columns),
            name=f"{alias}:{ChannelPv.TAIL}",
            description=(
                f"The newest {tail} history rows (config tail): {', '.join(columns)}; posted "
                "at publish_rate while watched, for live displays"
            ),
        )
        self.connected = AttrR(
            Bool(), name=f"{alias}:{ChannelPv.CONNECTED}", description="Source connected"
        )
        self.history = [
            a for a in (self.value, self.frame, self.time, self.table, self.tail) if a is not None
        ]
        for attr in self.history:
            attr.refresh = lambda attr=attr: self.publish(attr)
        self.connected.set(channel.connected)
        self.view = ChannelView(history, channel) if kind == "number" else None
        own = [a for a in (*self.history, self.frame_index, self.connected) if a is not None]
        view_pvi = f"{alias}:{ChannelPv.VIEW}:{PVI}"
        sub = {ChannelPv.VIEW.lower(): view_pvi} if self.view is not None else {}
        #: ``P:<alias>:PVI``: the channel's PVs, its view a sub-device (made on demand).
        self.pvi = pvi_attr(
            f"{alias}:{PVI}",
            lambda: pvi_entries(prefix(), own, strip=f"{alias}:", devices=sub),
        )
        served = [*own, self.pvi]
        if self.view is not None:
            view = self.view
            strip = f"{alias}:{ChannelPv.VIEW}:"
            served += [
                *view.attrs,
                pvi_attr(view_pvi, lambda: pvi_entries(prefix(), view.attrs, strip=strip)),
            ]
        #: Every PV of the channel by name (``alias:Suffix``).
        self.attrs: dict[str, AttrR[Any]] = {a.name: a for a in served if a is not None}

    @property
    def stale(self) -> bool:
        """An auto channel's number PVs, after it was found to be of another kind."""
        return self.kind != layout(self.channel)

    @property
    def customised(self) -> bool:
        """Whether a client changed a setting (FrameIndex, View) from its default."""
        moved = self.frame_index is not None and self.frame_index.value != -1
        return moved or bool(self.view and self.view.customised)

    @property
    def watched(self) -> bool:
        """Whether a client watches any history or View PV of this channel."""
        return any(a.watched for a in self.history) or bool(self.view and self.view.watched)

    def publish(self, only: AttrR[Any] | None = None) -> None:
        """Compute the watched history PVs (or just ``only``, which a client opened)."""
        if only is None and self.view is not None and self.view.watched and self.view.grew():
            self.view.compute()
        wanted = [only] if only is not None else [a for a in self.history if a.watched]
        if self.frame is not None and self.frame in wanted:
            self._publish_frame()
        if self.tail in wanted:
            self._publish_tail()
        rows_wanted = [a for a in wanted if a not in (self.frame, self.tail)]
        if not rows_wanted:
            return
        rows = self.recorded.rows(self.channel)
        stamp = float(rows.time[-1]) if len(rows) else time.time()
        for attr in rows_wanted:
            if attr is self.value:
                value = rows.value
                if isinstance(attr.datatype, NDArray) and value.ndim != 2:
                    value = value.reshape(len(value), -1) if len(value) else value.reshape(0, 0)
                attr.set(value, timestamp=stamp)
            elif attr is self.time:
                attr.set(rows.time, timestamp=stamp)
            else:
                table = {"time": rows.time, "severity": rows.severity, "status": rows.status}
                if "value" in self.table.datatype.columns:
                    table["value"] = rows.value
                attr.set(table, timestamp=stamp)

    def _publish_tail(self) -> None:
        rows = self.recorded.tail(self.channel, self.tail_rows)
        table = {"time": rows.time, "severity": rows.severity, "status": rows.status}
        if "value" in self.tail.datatype.columns:
            table["value"] = rows.value
        self.tail.set(table, timestamp=float(rows.time[-1]) if len(rows) else time.time())

    def _publish_frame(self) -> None:
        assert self.frame is not None and self.frame_index is not None
        row = self.recorded.frame(self.channel, self.frame_index.value)
        if row is None:
            self.frame.set(np.zeros((0, 0)))
            return
        stamp, image, severity, status = row
        self.frame.set(image, timestamp=stamp, severity=Severity(severity), status=Status(status))

    async def _select_frame(self, device: Any, index: int) -> None:
        held = len(self.channel.ring)
        if not -held <= index < max(held, 1):
            raise ValueError(
                f"no frame {index}: the history holds {held} (use 0..{held - 1} or -1)"
            )
        assert self.frame_index is not None
        self.frame_index.set(index)
        if self.frame is not None and self.frame.watched:
            self._publish_frame()


class ChannelPvFamily:
    """Every channel's PVs as one :class:`~epics_collector.core.PvFamily`.

    A channel's :class:`ChannelPvs` exist only while a client uses one of them (or while
    they hold a setting a client changed), so 100,000 idle channels hold no PV objects.
    ``make`` and ``release`` run on the transport's thread, the publisher on the event
    loop: the live set is guarded by a lock and read as a copy.
    """

    def __init__(self, history: History, tail: int, prefix: Callable[[], str] = str) -> None:
        self.history, self.tail, self.prefix = history, tail, prefix
        self._live: dict[str, ChannelPvs] = {}
        self._uses: dict[str, int] = {}
        self._suffixes: dict[str, frozenset[str]] = {}  # by kind
        self._lock = threading.Lock()

    def _split(self, name: str) -> tuple[Channel | None, str]:
        alias, _, suffix = name.partition(":")
        channel = self.history.by_alias.get(alias)
        if channel is None or channel.removed == channel.removed:
            return None, suffix  # (a removed channel has no PVs: its rows are read by Query)
        return channel, suffix

    def _make(self, channel: Channel) -> ChannelPvs:
        return ChannelPvs(self.history, channel, self.tail, self.prefix)

    def suffixes(self, channel: Channel) -> frozenset[str]:
        """The PV names of a channel of this kind, after ``alias:``."""
        kind = layout(channel)
        if kind not in self._suffixes:
            start = len(channel.alias) + 1
            names = self._make(channel).attrs
            self._suffixes[kind] = frozenset(name[start:] for name in names)
        return self._suffixes[kind]

    def has(self, name: str) -> bool:
        """Whether ``name`` is ``alias:Suffix`` of a channel."""
        channel, suffix = self._split(name)
        return channel is not None and suffix in self.suffixes(channel)

    def make(self, name: str) -> AttrR[Any]:
        """The attribute of ``name``, making the channel's PVs if none are live."""
        channel, _ = self._split(name)
        if channel is None:  # (removed since has() said yes)
            raise LookupError(f"no channel PV {name}")
        with self._lock:
            pvs = self._live.get(channel.alias)
            if pvs is None or pvs.stale:  # (none, or an auto channel's before it was found)
                pvs = self._live[channel.alias] = ChannelPvs(
                    self.history, channel, self.tail, self.prefix
                )
            self._uses[channel.alias] = self._uses.get(channel.alias, 0) + 1
            return pvs.attrs[name]

    def release(self, name: str) -> None:
        """One use ended; the channel's PVs go when unused and at their defaults."""
        alias = name.partition(":")[0]
        with self._lock:
            uses = self._uses.pop(alias, 0) - 1
            if uses > 0:
                self._uses[alias] = uses
                return
            pvs = self._live.get(alias)
            if pvs is not None and not pvs.customised:
                del self._live[alias]

    def reset(self, alias: str) -> list[str]:
        """An auto channel's kind was found: the names of its PVs to close, if it changed.

        The transport closes those (their clients reconnect to the PVs of its kind).
        """
        with self._lock:
            pvs = self._live.get(alias)
            if pvs is None or not pvs.stale:
                return []
            return list(pvs.attrs)

    def served(self, alias: str) -> list[str]:
        """The names of a channel's PVs made now (to close when it is removed)."""
        with self._lock:
            pvs = self._live.get(alias)
            return list(pvs.attrs) if pvs is not None else []

    def live(self) -> list[ChannelPvs]:
        """The channels' PVs that exist now (a copy)."""
        with self._lock:
            return list(self._live.values())

    def names(self) -> Iterator[str]:
        """Every channel's PV names, channel by channel."""
        for channel in list(self.history.channels):
            if channel.removed == channel.removed:
                continue
            for suffix in sorted(self.suffixes(channel)):
                yield f"{channel.alias}:{suffix}"
