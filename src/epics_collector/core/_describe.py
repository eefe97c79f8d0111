"""What a device class serves, as rows for reference tables (generated docs, listings).

One description of each PV, taken from its declaration: name, normative type, who may
put, and its description. ``tools/pv_tables.py`` writes the tables of ``docs/reference``
from these rows, and a test fails when they are stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from epics_collector.core._attributes import AttrR, AttrRW, Command, Rpc
from epics_collector.core._datatypes import (
    Bool,
    DataType,
    Enum,
    Float,
    Int,
    NDArray,
    Pvi,
    String,
    Table,
    Waveform,
)
from epics_collector.core._parts import declarations


@dataclass(frozen=True)
class PvRow:
    """One served PV as a reference table shows it."""

    name: str
    type: str
    access: str
    description: str

    def markdown(self, prefix: str = "P:") -> str:
        """The row as a Markdown table row."""
        text = " ".join(self.description.split()).replace("|", "\\|")
        return f"| `{prefix}{self.name}` | {self.type} | {self.access} | {text} |"


def type_name(datatype: DataType) -> str:
    """The normative type a datatype is served as (``NTScalar int64``, ``NTTable``...)."""
    if isinstance(datatype, Int):
        return f"NTScalar int{datatype.width}"
    if isinstance(datatype, Float):
        return "NTScalar double"
    if isinstance(datatype, Bool):
        return "NTScalar boolean"
    if isinstance(datatype, String):
        return "NTScalar string"
    if isinstance(datatype, Enum):
        return f"NTEnum ({', '.join(datatype.choices)})"
    if isinstance(datatype, Waveform):
        kind = np.dtype(datatype.dtype)
        return f"NTScalarArray {'string' if kind.kind in 'USO' else kind.name}"
    if isinstance(datatype, Table):
        return f"NTTable ({', '.join(datatype.columns)})"
    if isinstance(datatype, NDArray):
        return "NTNDArray"
    if isinstance(datatype, Pvi):
        return "PVI structure"
    return type(datatype).__name__


def attr_row(attr: AttrR[Any]) -> PvRow:
    """The row of one attribute."""
    if isinstance(attr, Command):
        kind, access = "NTScalar int64", f"put 1 ({attr.access})"
    else:
        kind = type_name(attr.datatype)
        access = f"put ({attr.access})" if isinstance(attr, AttrRW) else "read"
    return PvRow(attr.name, kind, access, attr.description)


def rpc_row(declaration: Rpc) -> PvRow:
    """The row of one RPC."""
    return PvRow(
        declaration.name, "RPC (NTURI in)", f"call ({declaration.access})", declaration.description
    )


def declared_rows(cls: type, *, inherited: bool = True) -> list[PvRow]:
    """The rows of what ``cls`` declares (its class attributes and its parts'), by name.

    Without ``inherited``, what its base classes declare is left out.
    """
    found: dict[str, AttrR[Any] | Rpc] = {}
    owners = [cls, *getattr(cls, "parts", ())]
    for owner in owners:
        mine = declarations(owner)
        if not inherited:
            mine = {a: v for a, v in mine.items() if a in vars(owner) or owner is not cls}
        for value in mine.values():
            if isinstance(value, AttrR | Rpc):
                found[value.name] = value
    rows = [attr_row(v) if isinstance(v, AttrR) else rpc_row(v) for v in found.values()]
    return sorted(rows, key=lambda row: row.name)


def rows_of(attrs: Iterable[AttrR[Any]]) -> list[PvRow]:
    """The rows of attributes made at run time (a channel's PVs, say), in the given order."""
    return [attr_row(attr) for attr in attrs]
