"""Run counters of a processing device, kept by whichever thread runs the processor."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass


@dataclass
class Tally:
    """Run counters: kept by the processing thread, posted by the event loop."""

    count: int = 0
    errors: int = 0
    duration: float = 0.0
    duration_max: float = 0.0
    lock: threading.Lock = dataclasses.field(
        default_factory=threading.Lock, repr=False, compare=False
    )

    def ran(self) -> None:
        with self.lock:
            self.count += 1

    def failed(self) -> None:
        with self.lock:
            self.errors += 1

    def took(self, seconds: float) -> None:
        with self.lock:
            self.duration = seconds
            self.duration_max = max(self.duration_max, seconds)

    def reset(self) -> None:
        with self.lock:
            self.count = self.errors = 0
            self.duration_max = 0.0

    def snapshot(self) -> Tally:
        with self.lock:
            return Tally(self.count, self.errors, self.duration, self.duration_max)
