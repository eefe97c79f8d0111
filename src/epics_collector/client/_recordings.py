"""What a factory says of its recordings, and a recording's pages put back together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from epics_collector.client._devices import History


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


def paged_history(pages: Sequence[Any]) -> History:
    """The rows of ``Query operator=page`` tables, one after the other, as a History."""
    times = [np.asarray(p["time"], np.float64) for p in pages]
    severity = [np.asarray(p["severity"]) for p in pages]
    status = [np.asarray(p["status"]) for p in pages]
    values: list[np.ndarray] = []
    for page in pages:
        if "elements" in page:  # array rows: every row's elements, one after the other
            counts = np.asarray(page["elements"], np.int64)
            flat = np.asarray(page["values"])
            width = int(counts[0]) if len(counts) else 0
            values.append(flat.reshape(len(counts), width) if len(counts) else flat)
        else:
            values.append(np.asarray(page["value"]))
    joined = [np.concatenate(c) if c else np.zeros(0) for c in (times, severity, status)]
    value = np.concatenate(values) if values else np.zeros(0)
    return History(joined[0], value, joined[1], joined[2])
