"""Reads served on a bounded pool: no reader can starve the device or other readers.

A device answers read requests (a collector's Query, say) on a :class:`ReadPool` of its
own: a few worker threads, at most ``per_host`` requests in progress or waiting per
client host and at most ``workers + queue`` in all. A request beyond those limits is
refused at once with :class:`BusyError` ("busy, retry"), counted by the pool, and never
waits: a flood from one host costs the device one refusal per request, while the event
loop (Heartbeat, puts, recording) and other hosts' reads go on. The pool's counters
belong to the event loop that calls :meth:`ReadPool.run`.

Reads give way to recording by pacing, not by a lower OS priority (a read worker at a
lower priority can starve at the recorder's lock behind a busy drain thread): between
chunks of one read (see :mod:`epics_collector.storage._reads`), and between reads:
while updates arrive faster than :data:`BUSY_RATE` a second (:class:`BusyGauge`), a worker waits
:data:`PACE` times as long as its last read took before it starts the next one (a
read's answer is built and sent outside its chunks: a client paging through a long
history in small reads would otherwise take a share of the interpreter from
recording). A read's time counts its answer too: the caller builds and hands it to the
transport in the event-loop step that :meth:`ReadPool.run` returns to, timed by a
callback run right after that step.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from epics_collector.process import BusyGauge

T = TypeVar("T")
PACE = 100.0  # while busy, a worker rests this many times its last read's duration
MAX_REST = 0.5  # seconds, at most, between two reads


class BusyError(RuntimeError):
    """The device is busy with other reads: retry later (the text says which limit)."""


class ReadLimits(BaseModel):
    """How many reads a device serves at once (config ``reads``)."""

    model_config = ConfigDict(extra="forbid")

    workers: int = Field(1, ge=1, le=16, description="Reads computed at once (threads)")
    per_host: int = Field(
        16, ge=1, le=1000, description="Reads in progress or waiting from one client host"
    )
    queue: int = Field(64, ge=0, le=10_000, description="Reads waiting for a worker, all hosts")
    timeout: float = Field(
        10.0, ge=0.1, le=600.0, description="Seconds one read may compute before it is ended"
    )


def read_limits_field(description: str) -> Any:
    """A config's ``reads`` field: :class:`ReadLimits` with its defaults."""
    return Field(
        default_factory=lambda: ReadLimits(workers=1, per_host=16, queue=64, timeout=10.0),
        description=description,
    )


class ReadPool:
    """Runs blocking reads on ``limits.workers`` threads with per-host and total bounds."""

    def __init__(
        self, limits: ReadLimits, name: str = "read", arrivals: Callable[[], int] | None = None
    ) -> None:
        self.limits = limits
        self.arrivals = arrivals  # updates received so far (reads give way while it grows)
        self._busy = BusyGauge(arrivals)
        # pacing state, written by the workers and (after an answer) the event loop, each
        # write one float: a race only moves one rest; no reader relies on it
        self._rest_until = 0.0  # set by the worker that finished last
        self._executor = ThreadPoolExecutor(limits.workers, thread_name_prefix=name)
        self._by_host: Counter[str] = Counter()
        self.active = 0  # reads in progress or waiting for a worker
        self.busy = 0  # reads turned away busy because of the limits

    async def run(self, host: str, read: Callable[..., T], *args: object) -> T:
        """``read(*args)`` on a worker for a client on ``host``; :class:`BusyError` if full."""
        most = self.limits.workers + self.limits.queue
        if self.active >= most:
            self.busy += 1
            raise BusyError(f"busy: {self.active} reads in progress or waiting (at most {most})")
        if self._by_host[host] >= self.limits.per_host:
            self.busy += 1
            raise BusyError(
                f"busy: {self._by_host[host]} reads from this host in progress (at most "
                f"{self.limits.per_host} per host): retry when one has answered"
            )
        self.active += 1
        self._by_host[host] += 1
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, self._paced, read, *args)
            loop.call_soon(self._answered, time.monotonic())  # runs once the answer is sent
            return result
        finally:
            self.active -= 1
            self._by_host[host] -= 1
            if not self._by_host[host]:
                del self._by_host[host]

    def _paced(self, read: Callable[..., T], *args: object) -> T:
        """``read(*args)``, after resting while recording is busy (on a worker)."""
        rest = self._rest_until - time.monotonic()
        if rest > 0 and self._busy():
            time.sleep(min(rest, MAX_REST))
        began = time.monotonic()
        try:
            return read(*args)
        finally:
            ended = time.monotonic()
            self._rest_until = ended + PACE * (ended - began)

    def _answered(self, since: float) -> None:
        """The answer took since ``since`` to build and send: the rest grows by its share."""
        self._rest_until += PACE * (time.monotonic() - since)

    def close(self) -> None:
        """Stop the workers (reads waiting for one are cancelled)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
