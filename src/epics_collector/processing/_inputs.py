"""The inputs of a processing device: newest value per input, coalesced, thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Callable

from epics_collector.core import Update
from epics_collector.processing._api import Input


class InputSlot:
    """One input: its newest update; a source listener (any thread)."""

    def __init__(self, name: str, pv: str, owner: InputTable) -> None:
        self.name, self.pv, self.owner = name, pv, owner
        self.latest: Update | None = None
        self.fresh = False  # an update not yet processed
        self.connected = False

    def on_update(self, update: Update) -> None:
        """Any thread: keep the newest; an unprocessed one it replaces is skipped."""
        with self.owner.lock:
            if self.fresh:
                self.owner.skipped += 1
            self.latest, self.fresh = update, True
        self.owner.wake(self.name)

    def on_connection(self, connected: bool, reason: str) -> None:
        """Any thread."""
        self.connected = connected
        self.owner.wake(None)


class InputTable:
    """All inputs; ``wake(name)`` is called on any update (from any thread)."""

    def __init__(self, inputs: dict[str, str], wake: Callable[[str | None], None]) -> None:
        self.lock = threading.Lock()
        self.skipped = 0
        self.wake = wake
        self.slots = {name: InputSlot(name, pv, self) for name, pv in inputs.items()}

    def ready(self, trigger: str) -> bool:
        """Whether ``trigger`` (any, all or an input name) is satisfied now."""
        with self.lock:
            if any(s.latest is None for s in self.slots.values()):
                return False
            if trigger == "any":
                return any(s.fresh for s in self.slots.values())
            if trigger == "all":
                return all(s.fresh for s in self.slots.values())
            return self.slots[trigger].fresh

    def missing(self) -> list[str]:
        """Inputs without any value yet."""
        return [s.name for s in self.slots.values() if s.latest is None]

    def take(self) -> dict[str, Input]:
        """The newest value of every input; marks them processed."""
        with self.lock:
            taken = {}
            for slot in self.slots.values():
                assert slot.latest is not None
                u = slot.latest
                taken[slot.name] = Input(u.value, u.timestamp, u.severity)
                slot.fresh = False
            return taken
