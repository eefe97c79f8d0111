"""ISO 8601 times of retrieval requests, to the nanosecond."""

from __future__ import annotations

import datetime
import re

_FRACTION = re.compile(
    r"(?P<head>[^.,]+?)(?:[.,](?P<fraction>\d{1,9}))?(?P<zone>Z|[+-]\d\d:?\d\d)?"
)


class TimeError(ValueError):
    """A time that is not ISO 8601."""


def parse_time(text: str) -> tuple[int, int]:
    """``2026-12-04T10:00:00.123456789Z`` as (POSIX seconds, nanoseconds).

    A time without a zone is UTC (as the appliance takes it).
    """
    match = _FRACTION.fullmatch(text.strip())
    if match is None:
        raise TimeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-04T10:00:00.000Z)")
    zone = match["zone"] or "Z"
    try:
        moment = datetime.datetime.fromisoformat(
            match["head"] + ("+00:00" if zone == "Z" else zone)
        )
    except ValueError:
        raise TimeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-04T10:00:00.000Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    nanos = int((match["fraction"] or "0").ljust(9, "0"))
    return int(moment.timestamp()), nanos


def iso(secs: int, nanos: int = 0) -> str:
    """POSIX seconds and nanoseconds as ISO 8601 UTC with nanoseconds."""
    moment = datetime.datetime.fromtimestamp(secs, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
