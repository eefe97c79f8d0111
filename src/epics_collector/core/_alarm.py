"""Alarm severity and status, as PVAccess carries them in ``alarm_t``."""

from enum import IntEnum


class Severity(IntEnum):
    """EPICS alarm severity."""

    NO_ALARM = 0
    MINOR = 1
    MAJOR = 2
    INVALID = 3


class Status(IntEnum):
    """PVAccess ``alarm_t.status`` (where the alarm comes from)."""

    NO_STATUS = 0
    DEVICE = 1
    DRIVER = 2
    RECORD = 3
    DB = 4
    CONF = 5
    UNDEFINED = 6
    CLIENT = 7
