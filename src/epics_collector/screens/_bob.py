"""Phoebus display files (``.bob``) from a device's PV description.

The description is the one the PVA layer serves (``Device.pvs`` and, up to
:data:`MAX_FAMILY_PVS`, the PVs of its families), so every widget names a PV the device
has. Widgets by datatype: text update for read-only values, text entry / combo box /
check box for writable ones, a button for commands, a table for NTTables, an image for
NTNDArrays, and for a channel's history an x/y plot of ``Time`` against ``Value``. RPC
PVs have no Phoebus widget; the screen names the command to call them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from epics_collector.core import (
    AttrR,
    AttrRW,
    Bool,
    Command,
    Device,
    Enum,
    NDArray,
    Pvi,
    Table,
    Waveform,
)

GENERAL = "Device"
MAX_FAMILY_PVS = 400  # per-channel PVs on one screen (a collector may have 100,000 channels)
LABEL_W, WIDGET_W, ROW_H, GAP = 170, 300, 22, 6
WIDE_W = LABEL_W + GAP + WIDGET_W
_GROUP = re.compile(r"^(?P<group>[^:]+(?::View)?):(?P<rest>.+)$")  # alias:View: apart


class _Widgets:
    """Appends widgets to a parent element, one row after another."""

    def __init__(self, parent: ET.Element, x: int = 10, y: int = 10) -> None:
        self.parent, self.x, self.y = parent, x, y

    def add(self, kind: str, name: str, x: int, y: int, w: int, h: int, **props: str) -> ET.Element:
        widget = ET.SubElement(self.parent, "widget", type=kind, version="2.0.0")
        for key, value in (("name", name), ("x", x), ("y", y), ("width", w), ("height", h)):
            ET.SubElement(widget, key).text = str(value)
        for key, value in props.items():
            ET.SubElement(widget, key).text = value
        return widget

    def label(self, text: str, tooltip: str = "") -> None:
        self.add(
            "label",
            f"Label {text}",
            self.x,
            self.y,
            LABEL_W,
            ROW_H,
            text=text,
            tooltip=tooltip or text,
        )

    def row(self, kind: str, name: str, pv: str, **props: str) -> ET.Element:
        widget = self.add(
            kind, name, self.x + LABEL_W + GAP, self.y, WIDGET_W, ROW_H, pv_name=pv, **props
        )
        self.y += ROW_H + GAP
        return widget

    def block(self, kind: str, name: str, h: int, **props: str) -> ET.Element:
        widget = self.add(kind, name, self.x, self.y, WIDE_W, h, **props)
        self.y += h + GAP
        return widget


def _pv(prefix: str, attr: AttrR[Any]) -> str:
    return f"pva://{prefix}{attr.name}"


def _attr_widget(widgets: _Widgets, attr: AttrR[Any], prefix: str) -> None:
    pv, datatype, tip = _pv(prefix, attr), attr.datatype, attr.description or attr.name
    if isinstance(attr, Command):
        button = widgets.add(
            "action_button",
            attr.name,
            widgets.x + LABEL_W + GAP,
            widgets.y,
            120,
            ROW_H,
            pv_name=pv,
            text=attr.name,
            tooltip=tip,
        )
        actions = ET.SubElement(button, "actions")
        action = ET.SubElement(actions, "action", type="write_pv")
        ET.SubElement(action, "pv_name").text = pv
        ET.SubElement(action, "value").text = "1"
        ET.SubElement(action, "description").text = attr.name
        widgets.label(attr.name, tip)
        widgets.y += ROW_H + GAP
        return
    if isinstance(datatype, Table):
        widgets.label(attr.name, tip)
        widgets.y += ROW_H
        widgets.block("table", attr.name, 160, pv_name=pv, tooltip=tip)
        return
    if isinstance(datatype, NDArray):
        widgets.label(attr.name, tip)
        widgets.y += ROW_H
        widgets.block("image", attr.name, 220, pv_name=pv, tooltip=tip)
        return
    if isinstance(datatype, Waveform) and datatype.dtype is not str:
        _plot(widgets, attr.name, y_pv=pv, x_pv="", tooltip=tip)
        return
    widgets.label(attr.name, tip)
    if isinstance(attr, AttrRW):
        if isinstance(datatype, Enum):
            widgets.row("combo", attr.name, pv, tooltip=tip)
        elif isinstance(datatype, Bool):
            widgets.row("checkbox", attr.name, pv, tooltip=tip, label="")
        else:
            widgets.row("textentry", attr.name, pv, tooltip=tip)
    else:
        widgets.row("textupdate", attr.name, pv, tooltip=tip)


def _plot(
    widgets: _Widgets,
    title: str,
    y_pv: str,
    x_pv: str,
    tooltip: str,
    more: Iterable[tuple[str, str]] = (),
) -> None:
    """An XY plot of ``y_pv`` against ``x_pv``, plus ``more`` (name, y PV) on the same x."""
    plot = widgets.block("xyplot", title, 230, title=title, tooltip=tooltip)
    traces = ET.SubElement(plot, "traces")
    for name, pv in [(title, y_pv), *more]:
        trace = ET.SubElement(traces, "trace")
        ET.SubElement(trace, "name").text = name
        ET.SubElement(trace, "x_pv").text = x_pv
        ET.SubElement(trace, "y_pv").text = pv
        ET.SubElement(trace, "err_pv").text = ""
        ET.SubElement(trace, "trace_type").text = "1"


def grouped(attrs: Iterable[AttrR[Any]]) -> dict[str, list[AttrR[Any]]]:
    """PVs by group: ``alias:Value`` goes to group ``alias``, the rest to ``Device``."""
    groups: dict[str, list[AttrR[Any]]] = {GENERAL: []}
    for attr in attrs:
        match = _GROUP.match(attr.name)
        groups.setdefault(match["group"] if match else GENERAL, []).append(attr)
    return groups


def _group(parent: _Widgets, title: str, attrs: list[AttrR[Any]], prefix: str) -> None:
    group = parent.add("group", title, parent.x, parent.y, WIDE_W + 30, 0)
    ET.SubElement(group, "name").text = title
    widgets = _Widgets(group, x=5, y=5)
    by_suffix = {attr.name.rsplit(":", 1)[-1]: attr for attr in attrs}
    time_, value = by_suffix.get("Time"), by_suffix.get("Value")
    done: set[str] = set()
    if time_ is not None and value is not None and isinstance(value.datatype, Waveform):
        if value.datatype.dtype is not str:
            # a View (alias:View:*) also has Min and Max: a band around the value
            band = [by_suffix[s] for s in ("Min", "Max") if s in by_suffix]
            _plot(
                widgets,
                f"{title} history" if not band else title,
                _pv(prefix, value),
                _pv(prefix, time_),
                value.description,
                [(attr.name, _pv(prefix, attr)) for attr in band],
            )
            done = {time_.name, value.name, *(attr.name for attr in band)}
    for attr in attrs:
        if attr.name not in done:
            _attr_widget(widgets, attr, prefix)
    height = group.find("height")
    assert height is not None
    height.text = str(widgets.y + 30)
    parent.y += widgets.y + 30 + GAP


def _family_attrs(device: Device[Any]) -> tuple[list[AttrR[Any]], bool]:
    """The first :data:`MAX_FAMILY_PVS` PVs of the device's families; whether more exist."""
    shown: list[AttrR[Any]] = []
    for family in device.families:
        for name in family.names():
            if len(shown) == MAX_FAMILY_PVS:
                return shown, True
            shown.append(family.make(name))
            family.release(name)
    return shown, False


def display(device: Device[Any], prefix: str, title: str) -> ET.ElementTree:
    """The ``.bob`` document of ``device`` served under ``prefix``."""
    root = ET.Element("display", version="2.0.0")
    ET.SubElement(root, "name").text = title
    widgets = _Widgets(root)
    widgets.block("label", "Title", 30, text=title)
    shown, more = _family_attrs(device)
    served = [a for a in (*device.pvs.values(), *shown) if not isinstance(a.datatype, Pvi)]
    for group_title, attrs in grouped(served).items():  # PVI is for programs, not people
        if attrs:
            _group(widgets, group_title, attrs, prefix)
    if more:
        text = (
            f"Only the first {MAX_FAMILY_PVS} per-channel PVs are shown; the others are "
            "served all the same (see the Channels table)"
        )
        widgets.block("label", "More", 40, text=text)
    if device.rpcs:
        calls = ", ".join(f"{prefix}{name}" for name in device.rpcs)
        text = f"RPCs (no Phoebus widget; epics-collector call PV key=value, or pvcall): {calls}"
        widgets.block("label", "RPCs", 40, text=text)
    ET.SubElement(root, "width").text = str(WIDE_W + 60)
    ET.SubElement(root, "height").text = str(widgets.y + 10)
    ET.indent(root)
    return ET.ElementTree(root)
