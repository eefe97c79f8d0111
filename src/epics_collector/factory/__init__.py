"""The factory: creates, destroys and supervises devices on a host, over PVAccess."""

from epics_collector.factory._config import (
    DeviceSpec,
    FactoryConfig,
    RestartPolicy,
    check_name,
    check_prefix,
)
from epics_collector.factory._device import Factory, FactoryStates
from epics_collector.factory._names import FactoryPv
from epics_collector.factory._recordings import RETIRED_ID, Recordings
from epics_collector.factory._setup import Setup, load_setup
from epics_collector.factory._state_files import StateDirBusyError, StateDirLock
from epics_collector.factory._store import DeviceStore
from epics_collector.factory._supervisor import LaunchError, Phase, Supervisor

__all__ = [
    "FactoryPv",
    "StateDirBusyError",
    "StateDirLock",
    "DeviceSpec",
    "DeviceStore",
    "Factory",
    "FactoryConfig",
    "FactoryStates",
    "LaunchError",
    "Phase",
    "RETIRED_ID",
    "Recordings",
    "RestartPolicy",
    "Setup",
    "Supervisor",
    "check_name",
    "check_prefix",
    "load_setup",
]
