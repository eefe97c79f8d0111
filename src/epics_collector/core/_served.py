"""The names a device serves under its prefix: declared PVs, and families made on demand.

:class:`PvRegistry` is the part of every device that the transport reads: which names
exist, which attribute answers for each, and who to tell when the set changes (PVs may
be added while the device is served).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from epics_collector.core._attributes import AttrR
from epics_collector.core._families import PvFamily

#: Called with the attributes added and the names removed.
PvWatcher = Callable[[list[AttrR[Any]], list[str]], None]


class PvRegistry:
    """The PVs and PV families a device serves (event loop)."""

    def __init__(self) -> None:
        self.pvs: dict[str, AttrR[Any]] = {}
        #: PVs made on demand (per channel, say); see :class:`PvFamily`.
        self.families: list[PvFamily] = []
        self._pv_watchers: list[PvWatcher] = []

    def add_pv(self, attr: AttrR[Any]) -> AttrR[Any]:
        """Serve ``attr`` under the prefix as ``attr.name``; names must be unique.

        May be called while the device is served (the transport serves the new PV at once).
        """
        if attr.name in self.pvs:
            raise ValueError(f"duplicate PV name {attr.name!r}")
        self.pvs[attr.name] = attr
        for watcher in self._pv_watchers:
            watcher([attr], [])
        return attr

    def remove_pv(self, name: str) -> None:
        """Stop serving PV ``name`` (added with :meth:`add_pv`)."""
        self.pvs.pop(name)
        for watcher in self._pv_watchers:
            watcher([], [name])

    def withdraw_family_pvs(self, names: list[str]) -> None:
        """Close the served PVs of a family's ``names``: their next clients get new ones."""
        if names:
            for watcher in self._pv_watchers:
                watcher([], names)

    def add_family(self, family: PvFamily) -> None:
        """Serve the names of ``family`` too, each made when a client asks for it."""
        self.families.append(family)

    def family_of(self, name: str) -> PvFamily | None:
        """The family that answers for PV ``name`` (not a declared PV), if any."""
        if name in self.pvs:
            return None
        return next((family for family in self.families if family.has(name)), None)

    def has_pv(self, name: str) -> bool:
        """Whether the device serves PV ``name`` (declared or in a family)."""
        return name in self.pvs or self.family_of(name) is not None

    def watch_pvs(self, watcher: PvWatcher) -> None:
        """Call ``watcher(added, removed_names)`` whenever PVs are added or removed."""
        self._pv_watchers.append(watcher)
