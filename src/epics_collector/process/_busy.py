"""Whether recording is busy: updates arriving faster than :data:`BUSY_RATE` a second.

Work that shares a device's interpreter with recording (reads, the retention policy)
gives way while it is: Python runs one thread at a time, so a lower OS priority does not
make a thread of the same process yield (and a read worker at a lower priority can starve
at the recorder's lock behind a busy drain thread). The gauge compares the count of
updates received with the time between two looks (at most every 0.1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BUSY_RATE = 1000.0  # updates per second from which other work gives way


class BusyGauge:
    """``gauge()``: whether ``arrivals()`` (updates received so far) grew fast lately.

    Any thread may look; each look writes one tuple (a race only moves one sample).
    """

    def __init__(self, arrivals: Callable[[], int] | None) -> None:
        self.arrivals = arrivals
        self._sample = (time.monotonic(), arrivals() if arrivals else 0)

    def __call__(self) -> bool:
        if self.arrivals is None:
            return False
        now, count = time.monotonic(), self.arrivals()
        then, before = self._sample
        if now - then >= 0.1:
            self._sample = (now, count)
        return count - before > BUSY_RATE * max(now - then, 1e-3)
