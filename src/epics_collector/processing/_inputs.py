"""The inputs of a processing device: bounded queues of updates, thread-safe.

Each input keeps up to ``depth`` unprocessed updates in arrival order, so a short burst
is processed update by update; beyond that the oldest is dropped and counted in
``skipped`` (never queued without bound). What a run takes depends on the trigger:

- ``any``: the oldest unprocessed update of any input (the others keep their newest);
- an input's name: that input's oldest update; the others jump to their newest;
- ``all``: the oldest update of every input;
- a period (``take_newest``): the newest of every input; older ones are skipped.
"""

from __future__ import annotations

import itertools
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable

from epics_collector.core import Update
from epics_collector.processing._api import Input

DEPTH = 256


def share_of(update: Update, count: int) -> int:
    """Which of ``count`` distributed devices takes ``update`` (the same in every process).

    By the source's update number where it has one (round robin over NTNDArray
    ``uniqueId``), else by a hash of the source timestamp (evenly spread, but two
    updates with one timestamp go to the same device).
    """
    if update.sequence is not None:
        return update.sequence % count
    return zlib.crc32(struct.pack("<d", update.timestamp)) % count


class InputSlot:
    """One input: its current value and unprocessed updates; a source listener."""

    def __init__(self, name: str, pv: str, owner: InputTable) -> None:
        self.name, self.pv, self.owner = name, pv, owner
        self.current: Update | None = None
        self.pending: deque[tuple[int, Update]] = deque()
        self.connected = False

    def on_update(self, update: Update) -> None:
        """Any thread: queue the update (dropping the oldest beyond the depth)."""
        share = self.owner.share
        if share is not None and share_of(update, share[1]) != share[0]:
            return  # another device's share
        with self.owner.lock:
            if len(self.pending) >= self.owner.depth:
                self.pending.popleft()
                self.owner.skipped += 1
            self.pending.append((next(self.owner.sequence), update))
        self.owner.wake(self.name)

    def on_connection(self, connected: bool, reason: str) -> None:
        """Any thread."""
        self.connected = connected
        self.owner.wake(None)

    def on_loss(self, missing: int | None) -> None:
        """Any thread: updates lost at the source queue, counted like skipped ones."""
        with self.owner.lock:
            if missing is None:
                self.owner.overruns += 1
            else:
                self.owner.skipped += missing

    def pop_oldest(self) -> None:
        self.current = self.pending.popleft()[1]

    def pop_newest(self) -> None:
        if self.pending:
            self.owner.skipped += len(self.pending) - 1
            self.current = self.pending[-1][1]
            self.pending.clear()


class InputTable:
    """All inputs; ``wake(name)`` is called on any update (from any thread)."""

    def __init__(
        self,
        inputs: dict[str, str],
        wake: Callable[[str | None], None],
        depth: int = DEPTH,
        share: tuple[int, int] | None = None,
    ) -> None:
        #: (index, count): take only the updates whose share is ``index`` (distribute)
        self.share = share
        self.lock = threading.Lock()
        self.skipped = 0
        self.overruns = 0  # times an input's monitor queue filled (updates may be squashed)
        self.depth = depth
        self.sequence = itertools.count()
        self.wake = wake
        self.slots = {name: InputSlot(name, pv, self) for name, pv in inputs.items()}

    def _known(self, slot: InputSlot) -> bool:
        return slot.current is not None or bool(slot.pending)

    def ready(self, trigger: str) -> bool:
        """Whether ``trigger`` (any, all or an input name) can run now."""
        with self.lock:
            if not all(self._known(s) for s in self.slots.values()):
                return False
            if trigger == "any":
                return any(s.pending for s in self.slots.values())
            if trigger == "all":
                return all(s.pending for s in self.slots.values())
            return bool(self.slots[trigger].pending)

    def missing(self) -> list[str]:
        """Inputs without any value yet."""
        with self.lock:
            return [s.name for s in self.slots.values() if not self._known(s)]

    def take(self, trigger: str) -> dict[str, Input]:
        """The values for one run under ``trigger`` (see the module text)."""
        with self.lock:
            slots = list(self.slots.values())
            if trigger == "any":
                oldest = min((s for s in slots if s.pending), key=lambda s: s.pending[0][0])
                oldest.pop_oldest()
                for slot in slots:
                    if slot.current is None:
                        slot.pop_newest()
            elif trigger == "all":
                for slot in slots:
                    slot.pop_oldest()
            else:
                self.slots[trigger].pop_oldest()
                for slot in slots:
                    if slot.name != trigger:
                        slot.pop_newest()
            return self._values()

    def take_newest(self) -> dict[str, Input]:
        """The newest value of every input (period triggers)."""
        with self.lock:
            for slot in self.slots.values():
                slot.pop_newest()
            return self._values()

    def _values(self) -> dict[str, Input]:
        taken = {}
        for slot in self.slots.values():
            assert slot.current is not None
            u = slot.current
            taken[slot.name] = Input(u.value, u.timestamp, u.severity)
        return taken
