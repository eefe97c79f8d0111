"""PVA values as text, the way ``pvget`` shows them: one line, or a table for NTTable."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from epics_collector.pva._decode import alarm as alarm_of
from epics_collector.pva._decode import decode, metadata, timestamp

SEVERITIES = ("", "MINOR", "MAJOR", "INVALID")


@dataclass(frozen=True)
class Display:
    """How a quantity is shown: its source's units (EGU) and precision (PREC)."""

    units: str = ""
    precision: int | None = None

    @classmethod
    def of(cls, value: Any) -> Display:
        """From a normative-type Value's ``display`` (empty where it has none)."""
        found = metadata(value)
        return cls(found.units or "", found.precision)

    def text(self, value: Any) -> Any:
        """A float with the precision, as a display panel shows it; others as they are."""
        if self.precision is None or not isinstance(value, float):
            return value
        return f"{value:.{self.precision}f}"


def _has(value: Any, field: str) -> bool:
    try:
        return field in value
    except TypeError:
        return False


#: Table columns that hold POSIX seconds (a collector's, a factory's tables): shown ISO.
TIME_COLUMNS = frozenset(
    {"time", "last_update", "started", "first", "last", "created", "destroyed"}
)


def iso(seconds: float) -> str:
    """POSIX seconds as ISO 8601 UTC with microseconds (empty for 0, NaN: no time)."""
    seconds = float(seconds)
    if not seconds > 0 or not np.isfinite(seconds):
        return ""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="microseconds")


def stamp(value: Any) -> str:
    """The value's ``timeStamp`` as ISO 8601 UTC (empty if it has none or it is 0)."""
    return iso(timestamp(value))


def alarm(value: Any) -> str:
    """``MAJOR HIHI``-style text of the value's alarm, empty when there is none."""
    severity, _, message = alarm_of(value)
    if severity == 0:
        return ""
    name = SEVERITIES[severity] if 0 < severity < len(SEVERITIES) else f"severity {severity}"
    return f"{name} {message}".strip()


def plain(item: Any) -> Any:
    """A JSON-friendly value (numpy scalars and arrays to Python)."""
    if isinstance(item, np.ndarray):
        return item.tolist()
    if isinstance(item, np.generic):
        return item.item()
    return item


def value_text(value: Any) -> str:
    """The ``value`` part as text: numbers, strings, enum by name, arrays as ``[a, b]``."""
    kind = value.getID() if hasattr(value, "getID") else ""
    if kind.startswith("epics:nt/NTEnum"):
        return str(decode(value))  # the choice's name (its index if out of range)
    if kind.startswith("epics:nt/NTNDArray"):
        dims = [int(d["size"]) for d in value["dimension"]]
        data = value["value"]
        dtype = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
        shape = "x".join(map(str, reversed(dims))) or "0"
        return f"NTNDArray {shape} {dtype} (uniqueId {value['uniqueId']})"
    if _has(value, "value") and kind.startswith("epics:nt/"):
        inner = value["value"]
        if isinstance(inner, np.ndarray):
            return json.dumps(inner.tolist())
        if isinstance(inner, str):
            return inner
        if hasattr(inner, "todict"):
            return json.dumps(inner.todict(), default=plain)
        return str(plain(inner))
    if hasattr(value, "todict"):
        return json.dumps(value.todict(), default=plain)
    return str(plain(value))


def line(name: str, value: Any) -> str:
    """``NAME  TIME  VALUE  ALARM`` like pvget; the parts a value lacks are left out."""
    return "  ".join(part for part in (name, stamp(value), value_text(value), alarm(value)) if part)


def is_table(value: Any) -> bool:
    """Whether ``value`` is an NTTable."""
    return hasattr(value, "getID") and value.getID().startswith("epics:nt/NTTable")


def _is_time(column: str, item: Any) -> bool:
    return column in TIME_COLUMNS and isinstance(item, float | np.floating)


def table_text(value: Any) -> str:
    """An NTTable as aligned columns with the labels as a header."""
    columns = list(value["value"].keys())
    labels = list(value["labels"]) if _has(value, "labels") else columns
    labels = labels if len(labels) == len(columns) else columns
    cells = [
        [iso(x) if _is_time(c, x) else str(plain(x)) for x in value["value"][c]] for c in columns
    ]
    rows = max((len(c) for c in cells), default=0)
    widths = [
        max([len(label), *(len(x) for x in col)]) for label, col in zip(labels, cells, strict=True)
    ]
    out = ["  ".join(label.ljust(w) for label, w in zip(labels, widths, strict=True)).rstrip()]
    for i in range(rows):
        out.append(
            "  ".join(
                (col[i] if i < len(col) else "").ljust(w)
                for col, w in zip(cells, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(out)
