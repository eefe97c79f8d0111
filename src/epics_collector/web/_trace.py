"""What the dashboard plots of one quantity: its newest points, units and precision."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from epics_collector.pva import Display

TAIL = 300  # points per trace kept and sent

#: One point as sent to the page: time (POSIX s), value (None for a gap), severity.
Point = tuple[float, float | None, int]


def finite_or_none(number: float) -> float | None:
    """``number``, or None where JSON has no word for it (NaN, infinities)."""
    return number if math.isfinite(number) else None


class Trace:
    """The newest points of one plotted quantity."""

    def __init__(self, label: str, device: str) -> None:
        self.label, self.device = label, device
        self.display = Display()
        self.points: deque[Point] = deque(maxlen=TAIL)
        self.seq = 0  # increases with every point added
        self.generation = 0  # increases when the points are replaced (a page redraws)
        self.rows: int | None = None  # the source's row count when last told (collectors)

    @property
    def last_time(self) -> float:
        """The newest point's time (-inf when there is none)."""
        return self.points[-1][0] if self.points else -math.inf

    def extend(self, times: Any, values: Any, severities: Any = None) -> None:
        """Add the points newer than the last one held (NaN values are gaps)."""
        times = np.asarray(times, np.float64)
        values = np.asarray(values, np.float64)
        sev = np.zeros(len(times), np.int64) if severities is None else np.asarray(severities)
        new = times > self.last_time
        rows = zip(
            times[new][-TAIL:].tolist(),
            values[new][-TAIL:].tolist(),
            sev[new][-TAIL:].astype(np.int64).tolist(),
            strict=True,
        )
        for t, v, s in rows:
            self.points.append((t, finite_or_none(v), s))
            self.seq += 1

    def replace(self, times: Any, values: Any, severities: Any = None) -> None:
        """Hold only these points (a restarted or cleared recording)."""
        self.points.clear()
        self.generation += 1
        self.extend(times, values, severities)

    def since(self, seq: int) -> list[Point]:
        """Points added after ``seq`` (all of them if too many were added)."""
        count = min(self.seq - seq, len(self.points))
        return list(self.points)[len(self.points) - count :] if count > 0 else []

    def describe(self) -> dict[str, Any]:
        """What the page needs besides the points."""
        return {
            "label": self.label,
            "device": self.device,
            "units": self.display.units,
            "precision": self.display.precision,
            "generation": self.generation,
        }
