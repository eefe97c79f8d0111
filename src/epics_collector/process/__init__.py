"""Starting and stopping child processes, one way everywhere (STYLE.md)."""

from epics_collector.process._busy import BUSY_RATE, BusyGauge
from epics_collector.process._device import (
    FACTORY_READY_LINE,
    MODULE,
    READY_LINE,
    DeviceProcess,
    FactoryProcess,
    device_arguments,
)
from epics_collector.process._exits import ExitWatch
from epics_collector.process._managed import (
    ManagedProcess,
    ProcessError,
    ReadyProcess,
    wait_for,
    wait_for_async,
    wait_until,
)
from epics_collector.process._parent import (
    PARENT_ENV,
    as_child,
    exit_with_parent,
    watch_parent,
    watch_parent_from_environment,
)
from epics_collector.process._priority import lower_priority, lower_process_priority
from epics_collector.process._ready import READY_FD_ENV, notify_ready
from epics_collector.process._signals import STOP_SIGNALS, StopRequest

__all__ = [
    "BUSY_RATE",
    "BusyGauge",
    "FACTORY_READY_LINE",
    "MODULE",
    "PARENT_ENV",
    "READY_FD_ENV",
    "READY_LINE",
    "STOP_SIGNALS",
    "DeviceProcess",
    "ExitWatch",
    "FactoryProcess",
    "ManagedProcess",
    "ProcessError",
    "ReadyProcess",
    "StopRequest",
    "as_child",
    "device_arguments",
    "exit_with_parent",
    "lower_priority",
    "lower_process_priority",
    "notify_ready",
    "wait_for",
    "wait_for_async",
    "wait_until",
    "watch_parent",
    "watch_parent_from_environment",
]
