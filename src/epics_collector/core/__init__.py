"""The device core: datatypes, PV declarations, the Device base, configs and the registry.

Nothing here imports p4p; the PVA layer serves what a device declares.
"""

from epics_collector.core._access import (
    AccessDeniedError,
    AccessPolicy,
    Operation,
    host_address,
)
from epics_collector.core._alarm import Severity, Status
from epics_collector.core._attributes import (
    AttrR,
    AttrRW,
    Caller,
    Command,
    Reading,
    Rpc,
    Scan,
    command,
    pv_name,
    rpc,
    scan,
)
from epics_collector.core._config import (
    MAX_CONFIG_CHARS,
    ConfigError,
    DeviceConfig,
    Finite,
    describe_validation_error,
    listed,
    load_config,
    parse_config_text,
    read_config,
    shorten,
    validate_config,
)
from epics_collector.core._datatypes import (
    Bool,
    DataType,
    Enum,
    Float,
    Int,
    NDArray,
    String,
    Table,
    Waveform,
)
from epics_collector.core._device import (
    Device,
    DeviceStates,
    PutError,
    RpcError,
    current_caller,
)
from epics_collector.core._families import PvFamily
from epics_collector.core._plugins import UnknownPluginError, load_plugin, plugin_names
from epics_collector.core._reads import BusyError, ReadLimits, ReadPool
from epics_collector.core._registry import (
    UnknownDeviceTypeError,
    device_type_names,
    load_device_type,
)
from epics_collector.core._sources import (
    SourceListener,
    Sources,
    Subscription,
    Update,
    posix_seconds,
    split_url,
)

__all__ = [
    "MAX_CONFIG_CHARS",
    "AccessDeniedError",
    "AccessPolicy",
    "Operation",
    "host_address",
    "AttrR",
    "AttrRW",
    "Bool",
    "BusyError",
    "ReadLimits",
    "ReadPool",
    "Caller",
    "Command",
    "ConfigError",
    "Finite",
    "DataType",
    "Device",
    "DeviceConfig",
    "DeviceStates",
    "Enum",
    "Float",
    "Int",
    "NDArray",
    "PutError",
    "PvFamily",
    "Reading",
    "Rpc",
    "RpcError",
    "Scan",
    "Severity",
    "Status",
    "SourceListener",
    "Sources",
    "String",
    "Subscription",
    "Table",
    "UnknownDeviceTypeError",
    "UnknownPluginError",
    "Update",
    "Waveform",
    "command",
    "current_caller",
    "describe_validation_error",
    "listed",
    "device_type_names",
    "load_config",
    "load_device_type",
    "load_plugin",
    "parse_config_text",
    "read_config",
    "plugin_names",
    "pv_name",
    "rpc",
    "posix_seconds",
    "scan",
    "shorten",
    "split_url",
    "validate_config",
]
