"""Samples clients push into a collector (non-EPICS data): checked before they touch anything.

A push names an extra channel (made on its first push), a value, and optionally a time
and a severity. Everything is checked before the recorder sees it, so a bad push is a
clear RPC error and never a row that breaks later flushes or exports. :class:`Pushing`
is the collector's part that serves the Push RPC and owns the extra channels.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from epics_collector.collector._config import ALIAS_PATTERN, ChannelConfig, CollectorConfig
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.core import Part, Severity, Status, Update, rpc, validate_config

#: Pushed times must lie between the EPICS epoch (1990-01-01) and a day from now.
EARLIEST = 631_152_000.0
FUTURE_MARGIN = 86_400.0
MAX_PUSHED_CHANNELS = 100


@dataclass(frozen=True)
class Sample:
    """One checked push."""

    channel: str
    kind: Literal["number", "string"]
    value: float | str
    time: float
    severity: int
    ns: int | None = None  # the time as given, exactly, in nanoseconds (None: now)


def parse_push(
    channel: Any, value: Any, time: Any, severity: Any, *, now: float, max_bytes: int
) -> Sample:
    """Check a push's arguments (text, as NTURI queries carry them); ``ValueError`` says why."""
    if not isinstance(channel, str) or not ALIAS_PATTERN.match(channel):
        raise ValueError(
            f"channel {str(channel)[:80]!r} must be 1-60 characters of A-Z a-z 0-9 _ - "
            "(the alias rule; not starting with -)"
        )
    stamp = now if time in ("", None) else _number("time", time)
    if not math.isfinite(stamp) or not EARLIEST <= stamp <= now + FUTURE_MARGIN:
        raise ValueError(f"time {stamp!r} is outside 1990-01-01 .. now + 1 day (POSIX seconds)")
    level = _number("severity", severity)
    if level not in (0, 1, 2, 3):
        raise ValueError(f"severity {severity!r} is not 0, 1, 2 or 3")
    text = value if isinstance(value, str) else str(value)
    if len(text.encode()) > max_bytes:
        raise ValueError(
            f"value is {len(text.encode())} bytes, more than push_max_bytes ({max_bytes})"
        )
    exact = None if time in ("", None) else _exact_ns(time)
    try:
        return Sample(channel, "number", float(text), stamp, int(level), exact)
    except ValueError:
        return Sample(channel, "string", text, stamp, int(level), exact)


def _exact_ns(time: Any) -> int | None:
    """A decimal time text (``1767225598.75``) as exact nanoseconds (a float loses them)."""
    try:
        return int(Decimal(str(time).strip()).scaleb(9).to_integral_value())
    except (InvalidOperation, ValueError, OverflowError):
        return None


def _number(name: str, text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {str(text)[:80]!r} is not a number") from None


class Pushing(Part):
    """Serves the Push RPC: samples into extra channels, each made on its first push."""

    def __init__(
        self,
        config: CollectorConfig,
        recorder: Recorder,
        added: Callable[[], None],
        report: Callable[[str, Severity], None],
    ) -> None:
        """``added()`` is called once an extra channel is made (to describe it on disk)."""
        self.config, self.recorder, self._added, self._report = config, recorder, added, report
        #: The extra channels: alias -> kind (number or string).
        self.kinds: dict[str, str] = {}

    @rpc(name=CollectorPv.PUSH)
    async def push(self, channel: str, value: Any, time: Any = "", severity: Any = "0") -> str:
        """Add a sample to an extra channel (made on first push): channel, value, time, severity.

        Samples come in time order: one older than the channel's newest row is refused
        with the reason (the same time again is taken).
        """
        sample = parse_push(
            channel,
            value,
            time,
            severity,
            now=clock.time(),
            max_bytes=self.config.push_max_bytes,
        )
        target = self.recorder.by_alias.get(sample.channel)
        if target is None:
            target = self.add_channel(sample.channel, sample.kind)
        elif target.alias not in self.kinds:
            raise ValueError(f"{channel} records {target.config.pv}; push to an extra channel")
        kind = target.kind
        if kind == "number" and sample.kind != "number":
            raise ValueError(f"{channel} holds numbers; {value!r} is not one")
        recorded = sample.value if kind == "number" else str(value)
        status = Status.CLIENT if sample.severity else 0
        update = Update(recorded, sample.time, sample.severity, status, ns=sample.ns)
        self.recorder.push(target, update)
        return f"{sample.channel}: {len(target.ring)} rows"

    def add_channel(self, alias: str, kind: str) -> Channel:
        """Make the extra channel ``alias`` of ``kind`` (a push, or reloading the history)."""
        config = validate_config(
            ChannelConfig, {"pv": f"push:{alias}", "alias": alias, "kind": kind}
        )
        if len(self.kinds) >= MAX_PUSHED_CHANNELS:
            raise ValueError(f"at most {MAX_PUSHED_CHANNELS} extra channels")
        channel = self.recorder.add_channel(config)
        self.kinds[alias] = kind
        self.recorder.mark_connected(channel)  # its source is the Push RPC
        self._added()
        self._report(f"extra channel {alias} ({kind}) created by a push", Severity.NO_ALARM)
        return channel
