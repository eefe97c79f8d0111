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
    reduced: str = ""  # operators its oldest rows were reduced to (retention)
    oldest_raw: float = float("nan")  # rows are raw from this time
    next_action: str = ""  # the retention policy's next ("reduce to mean_60", "delete")
    next_time: float = float("nan")  # when


@dataclass(frozen=True)
class RetentionAction:
    """One action of the retention policy or the disk budget (done, or in a dry run)."""

    recording: str
    channel: str  # "" for a whole recording deleted by the budget
    action: str  # reduce, delete, or purge (a whole recording, for the budget)
    before: float  # rows older than this (POSIX s; NaN for a purge)
    operator: str  # reduce: the operator
    rows: int  # rows taken away
    written: int  # rows written in their place
    freed: int  # bytes of rows freed


def retention_rows(table: Any) -> list[RetentionAction]:
    """The rows of a decoded RetentionDryRun or RetentionApply answer."""
    return [
        RetentionAction(
            str(table["recording"][i]),
            str(table["channel"][i]),
            str(table["action"][i]),
            float(table["before"][i]),
            str(table["operator"][i]),
            int(table["rows"][i]),
            int(table["written"][i]),
            int(table["freed"][i]),
        )
        for i in range(len(table["recording"]))
    ]


def _column(table: Any, name: str, i: int, default: Any) -> Any:
    """A cell of a column newer factories have (``default`` from older ones)."""
    return table[name][i] if name in table.keys() else default


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
            reduced=str(_column(table, "reduced", i, "")),
            oldest_raw=float(_column(table, "oldest_raw", i, float("nan"))),
            next_action=str(_column(table, "next_action", i, "")),
            next_time=float(_column(table, "next_time", i, float("nan"))),
        )
        for i in range(len(table["id"]))
    ]
