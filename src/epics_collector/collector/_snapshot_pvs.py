"""A snapshot's rows as PVs, ``Snapshot:<id>:<alias>:Time`` and ``...:Value``, made on demand.

Two PVs per channel per snapshot: with 100,000 channels and ``max_snapshots`` 10 that is
two million names, so they are a :class:`~epics_collector.core.PvFamily` made when a client
asks for one (from the frozen rows) and dropped when it leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from epics_collector.collector._history import History
from epics_collector.collector._snapshots import Snapshot
from epics_collector.core import AttrR, NDArray, Waveform

VALUE_DTYPES: dict[str, Any] = {"number": np.float64, "string": str}


class SnapshotPvFamily:
    """The PVs of the kept snapshots (images: only ``Time``; frames stay in the history)."""

    def __init__(self, history: History, snapshots: Callable[[], list[Snapshot]]) -> None:
        self.history, self.snapshots = history, snapshots

    def _suffixes(self, alias: str) -> tuple[str, ...]:
        channel = self.history.by_alias.get(alias)
        if channel is None:
            return ()
        return ("Time",) if channel.kind == "image" else ("Time", "Value")

    def _find(self, name: str) -> tuple[Snapshot, str, str] | None:
        parts = name.split(":")
        if len(parts) != 4 or parts[0] != "Snapshot" or not parts[1].isdigit():
            return None
        _, number, alias, suffix = parts
        snapshot = next((s for s in self.snapshots() if s.id == int(number)), None)
        if snapshot is None or alias not in snapshot.rows or suffix not in self._suffixes(alias):
            return None
        return snapshot, alias, suffix

    def has(self, name: str) -> bool:
        """Whether ``name`` is a PV of a kept snapshot."""
        return self._find(name) is not None

    def make(self, name: str) -> AttrR[Any]:
        """A new attribute holding the frozen rows (read-only: nothing to share)."""
        found = self._find(name)
        if found is None:
            raise LookupError(f"no snapshot PV {name}")
        snapshot, alias, suffix = found
        rows = snapshot.rows[alias]
        if suffix == "Time":
            attr: AttrR[Any] = AttrR(Waveform(), name=name, description="Snapshot times")
            attr.set(rows.time, timestamp=snapshot.trigger_time)
            return attr
        kind = self.history.by_alias[alias].kind
        datatype = (
            Waveform(dtype=VALUE_DTYPES[kind]) if kind in VALUE_DTYPES else NDArray(dtype=None)
        )
        attr = AttrR(datatype, name=name, description="Snapshot values")
        attr.set(rows.value, timestamp=snapshot.trigger_time)
        return attr

    def release(self, name: str) -> None:
        """Nothing is kept between uses."""

    def names(self) -> Iterator[str]:
        """Every snapshot's PV names."""
        for snapshot in list(self.snapshots()):
            for alias in snapshot.rows:
                for suffix in self._suffixes(alias):
                    yield f"Snapshot:{snapshot.id}:{alias}:{suffix}"
