"""Generated Phoebus screens: valid display XML naming exactly the device's PVs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from epics_collector.collector import Collector
from epics_collector.core import Device
from epics_collector.devices.counter import Counter
from epics_collector.factory import Factory
from epics_collector.processing import Processing
from epics_collector.screens import screen_name, write_screen

DEVICES: dict[str, tuple[type[Device[Any]], dict[str, Any]]] = {
    "counter": (Counter, {}),
    "collector": (
        Collector,
        {
            "channels": [
                "A:B",
                {"pv": "X:W", "kind": "waveform"},
                {"pv": "X:I", "kind": "image"},
                {"pv": "X:S", "kind": "string"},
            ],
            "trigger": {"pv": "T", "when": "rising"},
        },
    ),
    "processing": (
        Processing,
        {"inputs": {"a": "X"}, "processor": {"name": "calc", "params": {"expression": "a"}}},
    ),
    "factory": (Factory, {}),
}


def pv_names(path: Path) -> set[str]:
    """Every PV a screen names (pv_name, x_pv, y_pv), without the pva:// scheme."""
    root = ET.parse(path).getroot()
    names = {
        (element.text or "").removeprefix("pva://")
        for tag in ("pv_name", "x_pv", "y_pv")
        for element in root.iter(tag)
    }
    return names - {""}


@pytest.mark.parametrize("kind", DEVICES)
def test_a_screen_per_device_type(kind: str, tmp_path: Path) -> None:
    cls, config = DEVICES[kind]
    device = cls(config, data_dir=tmp_path)
    path = write_screen(device, "LAB:X:", tmp_path / "screens")
    root = ET.parse(path).getroot()
    assert root.tag == "display" and root.get("version") == "2.0.0"
    served = [*device.pvs, *(name for family in device.families for name in family.names())]
    # all, and only those; not PVI, which is for programs
    assert pv_names(path) == {f"LAB:X:{name}" for name in served if not name.endswith("PVI")}
    widgets = {w.get("type") for w in root.iter("widget")}
    assert {"label", "textupdate", "group"} <= widgets
    if kind == "collector":
        assert {"xyplot", "table", "image", "action_button", "combo", "textentry"} <= widgets
        plots = [t for t in root.iter("trace") if (t.findtext("x_pv") or "").endswith(":Time")]
        assert {t.findtext("y_pv") for t in plots} >= {"pva://LAB:X:A_B:Value"}
        # the view: one XY plot of value, min and max against View:Time, with its controls
        view = [t for t in plots if t.findtext("x_pv") == "pva://LAB:X:A_B:View:Time"]
        assert [t.findtext("y_pv") for t in view] == [
            f"pva://LAB:X:A_B:View:{name}" for name in ("Value", "Min", "Max")
        ]
        entries = {
            w.findtext("pv_name") for w in root.iter("widget") if w.get("type") == "textentry"
        }
        assert {f"pva://LAB:X:A_B:View:{name}" for name in ("Start", "End", "Points")} <= entries
    if device.rpcs:
        assert any("LAB:X:" in (t.text or "") for t in root.iter("text"))


def test_screen_names() -> None:
    assert screen_name("LAB:COL1:") == "LAB_COL1.bob"
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.bob", screen_name("a b/../c:"))
