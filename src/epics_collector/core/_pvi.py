"""PVI: a device describes its own PVs, so tools build themselves from what it serves.

Every device serves ``P:PVI`` (and a collector ``P:<alias>:PVI`` per channel, made on
demand like the channel's other PVs) in the structure ophyd-async's
``PviDeviceConnector`` reads and FastCS serves: one field per PV, named after the
device's attribute, giving the PV's full name under its access (``r`` read, ``rw``
read-write, ``x`` a command: put 1) or a sub-device's PVI PV (``d``). RPCs are not in
it (PVI has no entry for them). It is computed when a client opens it, so PVs a device
adds while it runs are in the next one a client opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from epics_collector.core._attributes import AttrR, AttrRW, Command, field_name
from epics_collector.core._datatypes import Pvi
from epics_collector.core._names import DevicePv

PVI = str(DevicePv.PVI)  # the PV's name, after a device's (or sub-device's) prefix
Entries = dict[str, dict[str, str]]


def pvi_entries(
    prefix: str,
    attrs: Iterable[AttrR[Any]],
    *,
    strip: str = "",
    devices: Mapping[str, str] | None = None,
) -> Entries:
    """The PVI fields of ``attrs`` served under ``prefix``.

    ``strip``: a part of the PV names the field names leave out (``alias:`` of a
    channel's PVs); ``devices``: sub-devices by field, each the name of its PVI PV.
    """
    entries: Entries = {}
    for attr in attrs:
        if isinstance(attr.datatype, Pvi):
            continue
        access = "x" if isinstance(attr, Command) else "rw" if isinstance(attr, AttrRW) else "r"
        name = attr.name.removeprefix(strip)
        key = field_name(name) if strip else attr.attribute
        entries[key] = {access: prefix + attr.name}
    for key, pvi_name in (devices or {}).items():
        entries[key] = {"d": prefix + pvi_name}
    return entries


def pvi_attr(name: str, entries: Callable[[], Entries]) -> AttrR[Pvi]:
    """An on-demand PVI PV named ``name``: ``entries()`` computed when a client opens it."""
    attr = AttrR(
        Pvi(), name=name, description="The PVs of this device by field (PVI, for ophyd-async)"
    )
    attr.refresh = lambda: attr.set(entries())
    return attr
