"""Several sources into one channel, back in source-time order.

The outputs of processing devices that split one stream (``distribute``) arrive from
several servers, each in order but interleaved with a little jitter. A merged channel
holds each update for ``window`` seconds, long enough for the other sources' older
updates to arrive, then releases them oldest first.
"""

from __future__ import annotations

import heapq
import itertools

from epics_collector.core import Update


class Merger:
    """A reorder buffer: updates go in as they come and out in timestamp order."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._held: list[tuple[float, int, Update]] = []
        self._order = itertools.count()  # ties keep their arrival order
        self._newest = float("-inf")

    def __len__(self) -> int:
        return len(self._held)

    def push(self, update: Update) -> list[Update]:
        """Hold ``update``; return what is now older than the newest by ``window``."""
        heapq.heappush(self._held, (update.timestamp, next(self._order), update))
        self._newest = max(self._newest, update.timestamp)
        return self.release(self._newest)

    def release(self, now: float) -> list[Update]:
        """The held updates stamped ``window`` or more before ``now``, oldest first."""
        out = []
        while self._held and self._held[0][0] <= now - self.window:
            out.append(heapq.heappop(self._held)[2])
        return out

    def flush(self) -> list[Update]:
        """Everything held, oldest first."""
        out = [item[2] for item in sorted(self._held)]
        self._held.clear()
        return out

    def reset(self) -> None:
        """Forget what is held."""
        self._held.clear()
        self._newest = float("-inf")
