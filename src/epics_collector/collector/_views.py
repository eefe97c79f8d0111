"""Views of a history for people who look: Query arguments and per-channel View PVs.

Both read through :mod:`epics_collector.storage` queries: a time range reduced to at most
``points`` rows, computed under the recorder's lock from the ring's own memory (never a
copy of the whole history).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from epics_collector.collector._history import History
from epics_collector.collector._names import ViewPv, view_pv
from epics_collector.collector._recorder import Channel
from epics_collector.core import AttrR, AttrRW, Enum, Float, Int, Severity, Waveform
from epics_collector.storage import MAX_POINTS, OPERATORS, Query, QueryError

DEFAULT_POINTS = 1000
DEFAULT_SETTINGS = (0.0, 0.0, DEFAULT_POINTS, "minmax")  # Start, End, Points, Operator


def _number(name: str, text: Any) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise QueryError(
            f"{name} must be a number (POSIX seconds for times), got {text!r}"
        ) from None
    if not math.isfinite(value):
        raise QueryError(f"{name} must be a finite number, got {text!r}")
    return value


def parse_query(arguments: Mapping[str, Any], span: tuple[float, float], kind: str) -> Query:
    """A :class:`Query` from RPC arguments (strings): missing ones take the defaults.

    start/end default to the oldest/newest row held (``span``), whatever the rows: a start
    after the newest row with no end asks for the rows from then on (none yet), an end
    before the oldest with no start for none; points default to 1000; operator to
    ``minmax`` for number channels and ``raw`` for the others.
    """
    start = _number("start", arguments.get("start"))
    end = _number("end", arguments.get("end"))
    if start is None:
        start = span[0] if end is None else min(span[0], end)
    if end is None:
        end = max(span[1], start)
    points_text = arguments.get("points")
    points = DEFAULT_POINTS
    if points_text is not None and str(points_text).strip():
        try:
            points = int(str(points_text))
        except ValueError:
            raise QueryError(f"points must be an integer, got {points_text!r}") from None
    operator = str(arguments.get("operator") or ("minmax" if kind == "number" else "raw"))
    return Query(start, end, points, operator.strip().lower(), _cursor(arguments))


def _cursor(arguments: Mapping[str, Any]) -> tuple[int, int] | None:
    """``epoch`` and ``after`` (a page's cursor: both or neither), as integers."""
    given = {k: str(arguments.get(k) or "").strip() for k in ("epoch", "after")}
    if not any(given.values()):
        return None
    try:
        epoch, after = int(given["epoch"]), int(given["after"])
    except ValueError:
        raise QueryError(
            "epoch and after (a page's cursor) must both be integers, got "
            f"epoch={given['epoch']!r} after={given['after']!r}"
        ) from None
    return epoch, after


class ChannelView:
    """``<alias>:View:*`` of a number channel, for displays that cannot call an RPC.

    Writable: ``Start`` and ``End`` (POSIX seconds; 0 means the oldest / the newest row,
    so ``End`` 0 follows the recording), ``Points``, ``Operator``. Computed on a put and,
    while watched, whenever the history grows into the range: ``Time``, ``Value`` and
    ``Min``/``Max`` (for ``minmax`` the bin's extremes; for other operators the value).
    """

    def __init__(self, history: History, channel: Channel) -> None:
        self.history, self.channel = history, channel
        alias = channel.alias
        self.start = AttrRW(
            Float(), name=view_pv(alias, ViewPv.START), description="View from (POSIX s; 0: oldest)"
        )
        self.end = AttrRW(
            Float(),
            name=view_pv(alias, ViewPv.END),
            description="View to (POSIX s; 0: newest, live)",
        )
        self.points = AttrRW(
            Int(low=1, high=MAX_POINTS),
            name=view_pv(alias, ViewPv.POINTS),
            description="View rows at most",
        )
        self.operator = AttrRW(
            Enum(choices=list(OPERATORS)),
            name=view_pv(alias, ViewPv.OPERATOR),
            description="View operator",
        )
        self.time = AttrR(
            Waveform(), name=view_pv(alias, ViewPv.TIME), description="View times (POSIX s)"
        )
        self.value = AttrR(Waveform(), name=view_pv(alias, ViewPv.VALUE), description="View values")
        self.low = AttrR(Waveform(), name=view_pv(alias, ViewPv.MIN), description="View bin minima")
        self.high = AttrR(
            Waveform(), name=view_pv(alias, ViewPv.MAX), description="View bin maxima"
        )
        self.outputs = [self.time, self.value, self.low, self.high]
        self.settings = [self.start, self.end, self.points, self.operator]
        for setting in self.settings:
            setting.put_handler = functools.partial(self._changed, setting)
        for output in self.outputs:
            output.refresh = self.compute
        self.attrs: list[AttrR[Any]] = [*self.settings, *self.outputs]
        for setting, default in zip(self.settings, DEFAULT_SETTINGS, strict=True):
            setting.set(default)
        self._computed_to = -math.inf  # the newest time the last computation could see

    @property
    def customised(self) -> bool:
        """Whether a setting differs from its default."""
        return any(s.value != d for s, d in zip(self.settings, DEFAULT_SETTINGS, strict=True))

    @property
    def watched(self) -> bool:
        """Whether a client watches a View output."""
        return any(a.watched for a in self.outputs)

    async def _changed(self, setting: AttrRW[Any], device: Any, value: Any) -> None:
        """Compute with the new setting before the put is answered (it is stored after)."""
        self.compute({setting.name: value})

    def grew(self) -> bool:
        """Whether new rows fall in the view's range since it was computed."""
        end = self.end.value
        return end == 0 or end > self._computed_to

    def compute(self, changed: Mapping[str | None, Any] | None = None) -> None:
        """Recompute the outputs from the settings (errors go to the outputs' alarm).

        ``changed``: a setting's new value by PV name, not stored yet (a put in progress).
        """
        new = dict(changed or {})

        def setting(attr: AttrRW[Any]) -> Any:
            return new.get(attr.name, attr.value)

        span = self.history.span(self.channel)
        start = setting(self.start) or span[0]
        end = setting(self.end) or span[1]
        try:
            columns = self.history.query(
                self.channel,
                Query(min(start, end), end, int(setting(self.points)), str(setting(self.operator))),
            )
        except QueryError as error:
            for output in self.outputs:
                output.set(np.zeros(0), severity=Severity.MINOR, message=str(error))
            return
        self._computed_to = span[1]
        values = np.asarray(columns.get("value", np.zeros(0)), np.float64)
        stamp = span[1] or time.time()
        self.time.set(columns["time"], timestamp=stamp)
        self.value.set(values, timestamp=stamp)
        self.low.set(np.asarray(columns.get("min", values), np.float64), timestamp=stamp)
        self.high.set(np.asarray(columns.get("max", values), np.float64), timestamp=stamp)
