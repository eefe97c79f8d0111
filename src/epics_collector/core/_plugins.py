"""Named plugins from Python entry points: device types, processors, uploaders."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TypeVar

T = TypeVar("T")


class UnknownPluginError(LookupError):
    """No plugin of that kind is registered under that name."""


class PluginImportError(ImportError):
    """A registered plugin (its entry point is installed) that cannot be imported here.

    Typically a package installed after this process started: an editable install
    adds its path through a ``.pth`` file, which Python reads only at start. A fresh
    interpreter (a device process, the factory's checking child) imports it.
    """


def plugin_names(group: str) -> list[str]:
    """Names registered in entry-point ``group``, sorted."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load_plugin(group: str, name: str, base: type[T], what: str) -> type[T]:
    """The subclass of ``base`` registered as ``name`` in ``group``.

    ``what`` names the kind of plugin in error messages ("device type", "processor", ...).
    """
    for ep in entry_points(group=group, name=name):
        try:
            cls = ep.load()
        except ImportError as error:
            raise PluginImportError(
                f"{what} {name!r} is registered ({ep.value}) but cannot be imported: {error}"
            ) from error
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"entry point {ep.value} for {name!r} is not a {base.__name__}")
        return cls
    registered = ", ".join(plugin_names(group)) or "none"
    raise UnknownPluginError(f"unknown {what} {name!r}; registered: {registered}")
