"""Starting and stopping child processes, one way everywhere (STYLE.md)."""

from epics_collector.process._device import READY_LINE, DeviceProcess
from epics_collector.process._managed import (
    ManagedProcess,
    ProcessError,
    ReadyProcess,
    wait_until,
)

__all__ = [
    "READY_LINE",
    "DeviceProcess",
    "ManagedProcess",
    "ProcessError",
    "ReadyProcess",
    "wait_until",
]
