"""Device types by name: the entry-point group ``epics_collector.device_types``.

The built-in types are registered in our own ``pyproject.toml`` the same way a
plugin package registers its own, so there is one lookup path for both.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from epics_collector.core._device import Device

GROUP = "epics_collector.device_types"


class UnknownDeviceTypeError(LookupError):
    """No device type is registered under that name."""


def device_type_names() -> list[str]:
    """Names of every registered device type, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_device_type(name: str) -> type[Device[Any]]:
    """The device class registered as ``name``."""
    for ep in entry_points(group=GROUP, name=name):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Device)):
            raise TypeError(f"entry point {ep.value} for {name!r} is not a Device subclass")
        return cls
    raise UnknownDeviceTypeError(
        f"unknown device type {name!r}; registered: {', '.join(device_type_names()) or 'none'}"
    )
