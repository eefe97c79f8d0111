"""What the dashboard shows, kept current from PVAccess: devices, channel tails, outputs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from epics_collector.client import (
    AsyncCollector,
    AsyncFactory,
    AsyncProcessor,
    ClientError,
    Connection,
    DeviceError,
    DeviceInfo,
    History,
)
from epics_collector.pva import Network

log = logging.getLogger(__name__)
TAIL = 300  # points per trace kept and sent
POLL = 0.5  # seconds between reads of a channel's new rows
READS_PER_DEVICE = 4  # reads of one collector in flight at once (it allows 16 per host)


class Trace:
    """The newest points of one plotted quantity."""

    def __init__(self) -> None:
        self.points: deque[tuple[float, float]] = deque(maxlen=TAIL)
        self.seq = 0  # increases with every point added

    def extend(self, times: np.ndarray, values: np.ndarray) -> None:
        """Add the points newer than the last one held."""
        last = self.points[-1][0] if self.points else -np.inf
        new = times > last
        for t, v in zip(times[new][-TAIL:].tolist(), values[new][-TAIL:].tolist(), strict=True):
            self.points.append((t, v))
            self.seq += 1

    def since(self, seq: int) -> list[tuple[float, float]]:
        """Points added after ``seq`` (all of them if too many were added)."""
        count = min(self.seq - seq, len(self.points))
        return list(self.points)[len(self.points) - count :] if count > 0 else []


class Hub:
    """Watches a factory: its devices, each collector channel's history, each output."""

    def __init__(self, factory_prefix: str, network: Network | None = None) -> None:
        self.prefix = factory_prefix
        self.connection = Connection(network, timeout=2.0)
        self.factory = AsyncFactory(self.connection, factory_prefix)
        self.devices: list[DeviceInfo] = []
        self.error = ""
        self.traces: dict[str, Trace] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (on the running loop)."""
        self._task = asyncio.create_task(self._run(), name="hub")

    async def stop(self) -> None:
        """Stop every watcher and close the connection."""
        for task in [self._task, *self._watchers.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.connection.close()

    async def _run(self) -> None:
        while True:
            try:
                self.devices = await self.factory.devices()
                self.error = ""
            except ClientError as error:
                self.devices, self.error = [], f"factory {self.prefix} unreachable: {error}"
            for info in self.devices:
                if info.prefix not in self._watchers:
                    watch = (
                        self._watch_collector if info.type == "collector" else self._watch_processor
                    )
                    self._watchers[info.prefix] = asyncio.create_task(watch(info.prefix))
            await asyncio.sleep(1.0)

    async def _forever(self, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a device that went away comes back later
                log.debug("watch: %s", error)
            await asyncio.sleep(1.0)

    async def _watch_collector(self, prefix: str) -> None:
        collector = AsyncCollector(self.connection, prefix)

        async def step() -> None:
            aliases = [str(a) for a in (await collector.channels())["alias"]]
            reads = asyncio.Semaphore(READS_PER_DEVICE)  # within the device's per-host limit
            await asyncio.gather(*(self._follow_table(prefix, a, reads) for a in aliases))

        await self._forever(step)

    async def _follow_table(self, prefix: str, alias: str, reads: asyncio.Semaphore) -> None:
        """The channel's newest points: its Tail once, then only new rows (Query, raw).

        Never the whole history: the first read moves ``tail`` rows, each later one the
        rows recorded since (a few per poll), so a long recording costs the same as a
        short one. If more rows came than a poll takes, the Tail is read again.
        """
        trace = self.traces.setdefault(f"{prefix}{alias}", Trace())
        collector = AsyncCollector(self.connection, prefix)
        refill = True
        while True:
            if refill:
                async with reads:  # a failure here: _forever retries
                    table = await collector.get(f"{alias}:Tail")
                times, values = table["time"], table.get("value")
            else:
                last = trace.points[-1][0] if trace.points else 0.0
                try:
                    async with reads:
                        answer = await collector.history(
                            alias, start=np.nextafter(last, np.inf), operator="raw", points=TAIL
                        )
                except DeviceError:  # more new rows than a poll takes: read the Tail instead
                    refill = True
                    continue
                assert isinstance(answer, History)
                times, values = answer.time, answer.value
            refill = False
            if values is not None and np.asarray(values).dtype.kind in "fiu":
                trace.extend(np.asarray(times), np.asarray(values, dtype=float))
            elif values is not None:
                return  # not numbers: nothing to plot
            await asyncio.sleep(POLL)

    async def _watch_processor(self, prefix: str) -> None:
        processor = AsyncProcessor(self.connection, prefix)

        async def step() -> None:
            names = await processor.output_names()
            await asyncio.gather(*(self._follow_output(prefix, name) for name in names))

        await self._forever(step)

    async def _follow_output(self, prefix: str, output: str) -> None:
        trace = self.traces.setdefault(f"{prefix}{output}", Trace())
        async for stamp, number in self.connection.monitor_stamped(f"{prefix}{output}"):
            if isinstance(number, int | float):
                trace.extend(np.array([stamp]), np.array([float(number)]))

    def snapshot(self, seen: dict[str, int]) -> dict[str, Any]:
        """Devices, and the points each trace gained since ``seen`` (updated in place)."""
        traces = {}
        for key, trace in self.traces.items():
            points = trace.since(seen.get(key, 0))
            if points:
                traces[key] = points
                seen[key] = trace.seq
        return {
            "time": time.time(),
            "factory": self.prefix,
            "error": self.error,
            "devices": [asdict(info) for info in self.devices],
            "traces": traces,
        }
