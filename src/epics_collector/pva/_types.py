"""Normative types for core datatypes: one :class:`NtMapping` per datatype class."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from p4p import Type, Value
from p4p.nt import NTEnum, NTNDArray, NTScalar, NTTable
from p4p.nt.common import alarm, timeStamp

from epics_collector.core import (
    Bool,
    DataType,
    Enum,
    Float,
    Int,
    NDArray,
    Pvi,
    Reading,
    String,
    Table,
    Waveform,
)

_NDARRAY = NTNDArray()


def _array_code(dtype: Any) -> str:
    """p4p type code of a numpy dtype (``d``, ``f``, ``l``, ``s``, ...)."""
    dt = np.dtype(dtype)
    if dt.kind in "US" or dt == np.dtype(object):
        return "s"
    if dt.kind == "b":
        return "?"
    codes = {"f8": "d", "f4": "f", "i8": "l", "i4": "i", "i2": "h", "i1": "b"}
    codes |= {"u8": "L", "u4": "I", "u2": "H", "u1": "B"}
    return codes[f"{dt.kind}{dt.itemsize}"]


def _pvi_type(entries: dict[str, dict[str, str]]) -> Type:
    """The type of a PVI value: its structure follows its fields (as FastCS serves it)."""
    fields = [
        (name, ("S", "structure", [(access, "s") for access in entry]))
        for name, entry in entries.items()
    ]
    return Type(
        [
            ("alarm", alarm),
            ("timeStamp", timeStamp),
            ("display", ("S", None, [("description", "s")])),
            ("value", ("S", "structure", fields)),
        ]
    )


def _stamp(reading: Reading) -> dict[str, Any]:
    seconds, fraction = divmod(reading.timestamp, 1.0)
    return {
        "alarm": {
            "severity": int(reading.severity),
            "status": int(reading.status),
            "message": reading.message,
        },
        "timeStamp": {"secondsPastEpoch": int(seconds), "nanoseconds": int(fraction * 1e9)},
    }


@dataclass
class NtMapping:
    """How one datatype is carried over PVA: its Type, its Values, and puts back."""

    datatype: DataType
    description: str

    def __post_init__(self) -> None:
        self.type = self._build_type()
        dt = self.datatype
        #: NTScalar or NTScalarArray: :meth:`stamped` can post a new value alone.
        self.plain = isinstance(dt, Int | Float | Bool | String | Waveform)
        if self.plain:
            self.value = self._plain_value  # type: ignore[method-assign]

    def _build_type(self) -> Type | None:
        dt = self.datatype
        if isinstance(dt, Pvi):
            return None  # made from each value
        if isinstance(dt, Enum):
            return NTEnum.buildType(display=True)
        if isinstance(dt, Table):
            return NTTable(columns=[(n, _array_code(t)) for n, t in dt.columns.items()]).type
        if isinstance(dt, NDArray):
            return _NDARRAY.type
        if isinstance(dt, Waveform):
            return NTScalar.buildType("a" + _array_code(dt.dtype), display=True)
        code = {Int: "l", Float: "d", Bool: "?", String: "s"}[type(dt)]
        if isinstance(dt, Int) and dt.width == 32:
            code = "i"
        return NTScalar.buildType(code, display=True, control=True)

    def initial(self, reading: Reading) -> Value:
        """The first Value, carrying display and control metadata as well."""
        value = self.value(reading)
        for key, item in self._metadata().items():
            value[key] = item
        return value

    def _metadata(self) -> dict[str, Any]:
        dt = self.datatype
        if isinstance(dt, NDArray):
            return {}
        if isinstance(dt, Table):
            return {"descriptor": self.description}
        if isinstance(dt, Pvi):
            return {"display.description": self.description}
        meta: dict[str, Any] = {"display.description": self.description}
        if isinstance(dt, Int | Float | Waveform):
            meta["display.units"] = dt.units
        if isinstance(dt, Int | Float) and dt.low is not None and dt.high is not None:
            for group in ("display", "control"):
                meta |= {f"{group}.limitLow": dt.low, f"{group}.limitHigh": dt.high}
        if isinstance(dt, Float | Waveform) and _array_code(getattr(dt, "dtype", "f8")) in "fd":
            meta["display.format"] = f"%.{dt.precision}f"
        return meta

    def value(self, reading: Reading) -> Value:
        """A Value with value, alarm and timeStamp marked changed."""
        dt, raw = self.datatype, reading.value
        fields = _stamp(reading)
        if isinstance(dt, NDArray):
            value = _NDARRAY.wrap(raw)
            fields["dataTimeStamp"] = fields["timeStamp"]
            for key, item in fields.items():
                value[key] = item
            return value
        if isinstance(dt, Pvi):
            fields["value"] = raw
            return Value(_pvi_type(raw), fields)
        if isinstance(dt, Enum):
            fields["value"] = {"index": dt.index(raw), "choices": list(dt.choices)}
        elif isinstance(dt, Table):
            fields["labels"] = list(dt.columns)
            fields["value"] = {name: raw[name] for name in dt.columns}
        else:
            fields["value"] = raw
        return Value(self.type, fields)

    def _plain_value(self, reading: Reading) -> Value:
        """:meth:`value` for NTScalar and NTScalarArray, the hot path of every post."""
        seconds = math.floor(reading.timestamp)
        return Value(
            self.type,
            {
                "value": reading.value,
                "alarm": {
                    "severity": int(reading.severity),
                    "status": int(reading.status),
                    "message": reading.message,
                },
                "timeStamp": {
                    "secondsPastEpoch": seconds,
                    "nanoseconds": int((reading.timestamp - seconds) * 1e9),
                },
            },
        )

    def stamped(self, reading: Reading) -> Value:
        """Only value and timeStamp marked changed (a plain type whose alarm is posted).

        pvxs merges a post's marked fields into the value it serves, so a client sees
        the alarm posted before; the update carries fewer fields.
        """
        timestamp = reading.timestamp
        seconds = int(timestamp)  # (POSIX times are positive: truncation is floor)
        return Value(
            self.type,
            {
                "value": reading.value,
                "timeStamp": {
                    "secondsPastEpoch": seconds,
                    "nanoseconds": int((timestamp - seconds) * 1e9),
                },
            },
        )

    def from_put(self, value: Value) -> Any:
        """The Python value of a client put (an enum index, a dict of columns, ...)."""
        dt = self.datatype
        if isinstance(dt, Enum):
            return int(value["value.index"])
        if isinstance(dt, Table):
            return {name: value["value"][name] for name in dt.columns}
        if isinstance(dt, NDArray):
            shape = [d["size"] for d in reversed(value["dimension"])]
            return np.asarray(value["value"]).reshape(shape)
        return value["value"]
