"""Device types by name: the entry-point group ``epics_collector.device_types``.

The built-in types are registered in our own ``pyproject.toml`` the same way a
plugin package registers its own, so there is one lookup path for both.
"""

from __future__ import annotations

from typing import Any

from epics_collector.core._device import Device
from epics_collector.core._plugins import UnknownPluginError, load_plugin, plugin_names

GROUP = "epics_collector.device_types"


class UnknownDeviceTypeError(UnknownPluginError):
    """No device type is registered under that name."""


def device_type_names() -> list[str]:
    """Names of every registered device type, sorted."""
    return plugin_names(GROUP)


def load_device_type(name: str) -> type[Device[Any]]:
    """The device class registered as ``name``."""
    try:
        return load_plugin(GROUP, name, Device, "device type")
    except UnknownPluginError as error:
        raise UnknownDeviceTypeError(str(error)) from None
