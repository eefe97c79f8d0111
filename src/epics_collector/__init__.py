"""EPICS Collector: record, process and serve EPICS data as EPICS devices over PVAccess.

``from epics_collector import Factory`` is the Python client (imported on first use, so
that device and plugin code importing ``epics_collector.core`` does not load it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epics_collector.client import AsyncFactory, Factory

__all__ = ["AsyncFactory", "Factory"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from epics_collector import client

        return getattr(client, name)
    raise AttributeError(f"module 'epics_collector' has no attribute {name!r}")
