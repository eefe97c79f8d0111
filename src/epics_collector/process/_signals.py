"""Ctrl-C and SIGTERM for foreground commands that stop their parts in order."""

from __future__ import annotations

import signal
import time
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """After :meth:`install`, SIGINT and SIGTERM only set a flag; nothing is raised.

    A ``KeyboardInterrupt`` raised at a random point (inside p4p's client, say) could
    leave a lock held and hang the clean-up that follows, and a ``threading.Event`` set
    from a signal handler can deadlock with a wait on it in the main thread. So the
    handler records the signal and the main thread polls (:meth:`wait`) at safe points.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def install(self) -> StopRequest:
        """Handle SIGINT and SIGTERM from now on (main thread only)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    @property
    def requested(self) -> bool:
        """Whether a stop signal came."""
        return self.signal is not None

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> bool:
        """Wait until a stop signal comes or ``timeout`` s pass; return whether one came."""
        deadline = float("inf") if timeout is None else time.monotonic() + timeout
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))  # a poll step
        return self.requested
