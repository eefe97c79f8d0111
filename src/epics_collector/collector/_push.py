"""Samples clients push into a collector (non-EPICS data): checked before they touch anything.

A push names an extra channel (made on its first push), a value, and optionally a time
and a severity. Everything is checked before the recorder sees it, so a bad push is a
clear RPC error and never a row that breaks later flushes or exports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from epics_collector.collector._config import ALIAS_PATTERN

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
