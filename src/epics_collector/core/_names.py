"""The PVs every device serves, named once, here, for the devices and their clients."""

from __future__ import annotations

from enum import StrEnum


class DevicePv(StrEnum):
    """The common PVs of every device, after its prefix."""

    STATE = "State"
    MESSAGE = "Message"
    CONFIG = "Config"
    HEARTBEAT = "Heartbeat"
    REFUSED = "Refused"
    PVI = "PVI"
