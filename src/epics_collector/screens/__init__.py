"""Phoebus screens (.bob) generated from a device's PV description."""

from epics_collector.screens._bob import display, grouped
from epics_collector.screens._write import screen_name, write_screen

__all__ = ["display", "grouped", "screen_name", "write_screen"]
