"""Names a device serves outside its prefix, on behalf of another (a factory's claims).

A factory answers for a prefix before the device it creates serves it, so a second
factory cannot take it meanwhile. :class:`OutsideNames` holds those names for the
transport, which serves them under the same access policy as the device's own PVs.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView
from typing import Any

from epics_collector.core._attributes import AttrR

#: Called with a full PV name and its attribute when served, or None when withdrawn.
OutsideWatcher = Callable[[str, "AttrR[Any] | None"], None]


class OutsideNames:
    """PVs served by full name, not under the device's prefix (event loop)."""

    def __init__(self, owner: str, allowed: bool) -> None:
        """``allowed``: whether the ``owner`` type may serve such names at all."""
        self._owner, self._allowed = owner, allowed
        self._attrs: dict[str, AttrR[Any]] = {}
        self._watchers: list[OutsideWatcher] = []

    def serve(self, full_name: str, attr: AttrR[Any]) -> None:
        """Serve ``attr`` as ``full_name`` until withdrawn."""
        if not self._allowed:
            raise TypeError(f"{self._owner} does not serve names outside its prefix")
        if full_name in self._attrs:
            raise ValueError(f"{full_name!r} is served already")
        self._attrs[full_name] = attr
        for watcher in self._watchers:
            watcher(full_name, attr)

    def withdraw(self, full_name: str) -> None:
        """Stop serving ``full_name`` (no-op if not served)."""
        if self._attrs.pop(full_name, None) is not None:
            for watcher in self._watchers:
                watcher(full_name, None)

    def watch(self, watcher: OutsideWatcher) -> None:
        """Call ``watcher(full_name, attr or None)`` as the names change."""
        self._watchers.append(watcher)

    def items(self) -> ItemsView[str, AttrR[Any]]:
        """The names served now, with their attributes."""
        return self._attrs.items()
