"""Write a device's screen as a Phoebus ``.bob`` file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from epics_collector.core import Device
from epics_collector.screens._bob import display


def screen_name(prefix: str) -> str:
    """A file name for the screen of ``prefix`` (``LAB:COL1:`` -> ``LAB_COL1.bob``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", prefix).strip("_") + ".bob"


def write_screen(device: Device[Any], prefix: str, directory: Path, title: str = "") -> Path:
    """Write ``directory/<prefix>.bob`` for ``device`` served under ``prefix``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / screen_name(prefix)
    tree = display(device, prefix, title or f"{type(device).__name__} {prefix}")
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path
