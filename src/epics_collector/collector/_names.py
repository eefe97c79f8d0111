"""The suffixes of a collector channel's PVs: each named once, here, for server and clients."""

from __future__ import annotations

from enum import StrEnum


class ChannelPv(StrEnum):
    """A channel's PV suffixes, after ``<alias>:``."""

    VALUE = "Value"
    FRAME = "Frame"
    FRAME_INDEX = "FrameIndex"
    TIME = "Time"
    TABLE = "Table"
    TAIL = "Tail"
    CONNECTED = "Connected"
    VIEW = "View"  # the view's PVs are ``<alias>:View:<ViewPv>``


class ViewPv(StrEnum):
    """A number channel's view PV suffixes, after ``<alias>:View:``."""

    START = "Start"
    END = "End"
    POINTS = "Points"
    OPERATOR = "Operator"
    TIME = "Time"
    VALUE = "Value"
    MIN = "Min"
    MAX = "Max"


def channel_pv(alias: str, suffix: ChannelPv) -> str:
    """A channel's PV name under the collector's prefix: ``<alias>:<suffix>``."""
    return f"{alias}:{suffix}"


def view_pv(alias: str, suffix: ViewPv) -> str:
    """A view PV's name under the collector's prefix: ``<alias>:View:<suffix>``."""
    return f"{alias}:{ChannelPv.VIEW}:{suffix}"
