"""What a factory says of its recordings, and a recording's pages put back together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordingInfo:
    """One row of a factory's Recordings table (times POSIX s, NaN where unknown)."""

    id: str  # what history() and purge() take
    name: str  # the collector's name
    prefix: str
    pvs: list[str]
    first: float
    last: float
    rows: int
    bytes: int
    state: str  # live or retired
    created: float
    destroyed: float


def recording_rows(table: Any) -> list[RecordingInfo]:
    """The rows of a decoded Recordings table."""
    return [
        RecordingInfo(
            id=str(table["id"][i]),
            name=str(table["name"][i]),
            prefix=str(table["prefix"][i]),
            pvs=[p for p in str(table["pvs"][i]).split(",") if p],
            first=float(table["first"][i]),
            last=float(table["last"][i]),
            rows=int(table["rows"][i]),
            bytes=int(table["bytes"][i]),
            state=str(table["state"][i]),
            created=float(table["created"][i]),
            destroyed=float(table["destroyed"][i]),
        )
        for i in range(len(table["id"]))
    ]
