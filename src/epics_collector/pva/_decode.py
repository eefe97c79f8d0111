"""The one reader of normative-type Values: what every part of the product takes out.

A source's updates (the drain thread's hot path: :func:`decoder_for`, chosen once per
source), a client's results (:func:`decode`), text for the CLI (:func:`timestamp`,
:func:`alarm`), a dashboard's units and precision and the Archiver Appliance headers
(:func:`metadata`) all read Values here, so an NT type is understood one way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from p4p import Value

from epics_collector.core import posix_ns, posix_seconds

Decoder = Callable[[Value], Any]
ENUM, TABLE, NDARRAY = "epics:nt/NTEnum:", "epics:nt/NTTable:", "epics:nt/NTNDArray:"
#: Metadata fields by their EPICS record field name (as the Archiver Appliance names them).
LIMITS = {
    "LOPR": "display.limitLow",
    "HOPR": "display.limitHigh",
    "DRVL": "control.limitLow",
    "DRVH": "control.limitHigh",
    "LOLO": "valueAlarm.lowAlarmLimit",
    "LOW": "valueAlarm.lowWarningLimit",
    "HIGH": "valueAlarm.highWarningLimit",
    "HIHI": "valueAlarm.highAlarmLimit",
}


def _kind(value: Any) -> str:
    return value.getID() if hasattr(value, "getID") else ""


def _field(value: Any, path: str) -> Any:
    """``value[path]``, or None where the Value has no such field."""
    try:
        return value[path]
    except (KeyError, TypeError, ValueError):
        return None


def frame(value: Value) -> np.ndarray:
    """An NTNDArray's pixels shaped (rows, columns): a view of the Value's own buffer."""
    shape = [d["size"] for d in reversed(value["dimension"])]
    return np.asarray(value["value"]).reshape(shape)


def decode(value: Value) -> Any:
    """A Python value: an enum's choice name, a table's columns, an image's array..."""
    kind = _kind(value)
    if kind.startswith(ENUM):
        choices = list(value["value.choices"])
        index = int(value["value.index"])
        return choices[index] if 0 <= index < len(choices) else index
    if kind.startswith(TABLE):
        columns = value["value"]
        return {name: np.asarray(columns[name]) for name in columns.keys()}
    if kind.startswith(NDARRAY):
        return frame(value)
    inner = value["value"]
    return inner if not isinstance(inner, np.ndarray) else np.asarray(inner)


def decoder_for(value: Value) -> Decoder:
    """How to read a source's values, chosen on its first one (an enum: its index).

    Arrays come back as views of the Value's own (immutable) buffers, which the views
    keep alive; whoever stores them copies.
    """
    kind = _kind(value)
    if kind.startswith(ENUM):
        return lambda v: v["value.index"]
    if kind.startswith(NDARRAY):
        return frame
    if "value" not in value:
        raise ValueError(f"{kind or 'structure'} has no value field")
    return lambda v: v["value"]


def sequence_for(value: Value) -> Decoder | None:
    """How to read a source's update sequence number, if it carries one (NTNDArray)."""
    if _kind(value).startswith(NDARRAY) and "uniqueId" in value:
        return lambda v: v["uniqueId"]
    return None


def stamp_and_alarm(value: Value) -> tuple[float, int, int, int | None]:
    """(POSIX seconds, severity, status, exact ns) of an update; now and 0 without them."""
    try:
        parts = value["timeStamp.secondsPastEpoch"], value["timeStamp.nanoseconds"]
        seconds, exact = posix_seconds(*parts), posix_ns(*parts)
        return seconds, value["alarm.severity"], value["alarm.status"], exact
    except KeyError:  # a plain structure without timeStamp/alarm: stamp on arrival
        return time.time(), 0, 0, None


def timestamp(value: Any) -> float:
    """The Value's time in POSIX seconds (0 where it has none)."""
    seconds, nanoseconds = (
        _field(value, "timeStamp.secondsPastEpoch"),
        _field(value, "timeStamp.nanoseconds"),
    )
    return 0.0 if seconds is None else seconds + (nanoseconds or 0) * 1e-9


def alarm(value: Any) -> tuple[int, int, str]:
    """(severity, status, message) of the Value's alarm ((0, 0, "") where it has none)."""
    severity = _field(value, "alarm.severity")
    if severity is None:
        return 0, 0, ""
    return (
        int(severity),
        int(_field(value, "alarm.status") or 0),
        str(_field(value, "alarm.message") or ""),
    )


@dataclass(frozen=True)
class Metadata:
    """What a Value says about its quantity besides the value."""

    units: str | None = None  # None: the Value has no display.units
    precision: int | None = None  # digits after the point, where given (0..17)
    description: str = ""
    limits: dict[str, Any] = field(default_factory=dict)  # by record field name (LOPR...)
    choices: list[str] | None = None  # an enum's


def metadata(value: Any) -> Metadata:
    """The Value's display, control and alarm metadata (empty where it has none)."""
    precision = _field(value, "display.precision")
    try:
        precision = int(precision) if precision is not None else None
    except (TypeError, ValueError):
        precision = None
    limits = {}
    for name, path in LIMITS.items():
        given = _field(value, path)
        if given is not None:
            limits[name] = given
    choices = _field(value, "value.choices") if _kind(value).startswith(ENUM) else None
    return Metadata(
        units=None if (units := _field(value, "display.units")) is None else str(units),
        precision=precision if precision is not None and 0 <= precision <= 17 else None,
        description=str(_field(value, "display.description") or ""),
        limits=limits,
        choices=[str(c) for c in choices] if choices is not None else None,
    )
