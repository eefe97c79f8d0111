"""A collector's source subscriptions, opened in paced batches.

Searching for 100,000 new channels at once floods the UDP receive buffer with replies;
the channels whose reply is dropped wait for pvxs's backed-off search (measured: 89 s to
connect 100,000 at once, more than a minute for part of them). So channels are subscribed
:data:`BATCH` at a time, each batch once at most :data:`WINDOW` subscribed channels are
still unconnected (or after :data:`BATCH_WAIT` seconds, so servers that are down only
slow the start, never stop it). The first batch is subscribed at once; the rest in the
background, while the device serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.core import Sources, Subscription

log = logging.getLogger(__name__)
BATCH = 2000
WINDOW = 4000
BATCH_WAIT = 2.0


class ChannelSubscriber:
    """Subscribes every channel of a recorder (and its merged PVs); closes them all."""

    def __init__(
        self,
        sources: Sources,
        recorder: Recorder,
        queue_size: Callable[[Channel], int],
        failed: Callable[[str], None],
    ) -> None:
        self.sources, self.recorder, self.queue_size = sources, recorder, queue_size
        self.failed = failed  # told why subscribing in the background stopped
        self.subscriptions: dict[str, list[Subscription]] = {}  # by channel alias
        self.subscribed = 0  # channels
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()  # a channel connected since the last look

    def connected(self) -> None:
        """A channel connected (told on the event loop): the next batch may be due."""
        self._connected.set()

    def _subscribe(self, channels: list[Channel]) -> None:
        for channel in channels:
            if channel.removed == channel.removed:  # (removed while waiting for its batch)
                continue
            listeners: list[tuple[str, Any]] = [(channel.config.pv, channel)]
            listeners += [
                (pv, channel.merged_source(i)) for i, pv in enumerate(channel.config.merge)
            ]
            self.subscriptions[channel.alias] = [
                self.sources.subscribe(pv, listener, queue_size=self.queue_size(channel))
                for pv, listener in listeners
            ]
            self.subscribed += 1

    def add(self, channel: Channel) -> None:
        """Subscribe a channel added while the device runs (event loop)."""
        self._subscribe([channel])

    def remove(self, channel: Channel) -> None:
        """Close a removed channel's subscriptions (event loop)."""
        subscriptions = self.subscriptions.pop(channel.alias, None)
        if subscriptions is not None:
            self.subscribed -= 1
            for subscription in subscriptions:
                subscription.close()

    def start(self) -> None:
        """Subscribe the first batch now and the others in the background (event loop)."""
        channels = [ch for ch in self.recorder.channels if _sourced(ch)]
        self._subscribe(channels[:BATCH])
        if len(channels) > BATCH:
            self._task = asyncio.create_task(self._rest(channels[BATCH:]), name="subscribe")

    async def _rest(self, channels: list[Channel]) -> None:
        loop = asyncio.get_running_loop()
        try:
            for first in range(0, len(channels), BATCH):
                deadline = loop.time() + BATCH_WAIT
                while self.subscribed - self.recorder.connected > WINDOW:
                    self._connected.clear()
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    with contextlib.suppress(TimeoutError):  # servers down: go on anyway
                        await asyncio.wait_for(self._connected.wait(), left)
                self._subscribe(channels[first : first + BATCH])
        except Exception as error:  # the channels not subscribed would never record
            log.exception("subscribing the channels failed")
            left = len(self.recorder.channels) - self.subscribed
            self.failed(
                f"subscribing failed after {self.subscribed} channels ({left} left): {error}"
            )
            return
        log.info("subscribed %d channels", self.subscribed)

    async def close(self) -> None:
        """Stop subscribing and close every subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for subscriptions in self.subscriptions.values():
            for subscription in subscriptions:
                subscription.close()
        self.subscriptions = {}


def _sourced(channel: Channel) -> bool:
    """A channel to subscribe: not removed, and not fed by Push (``push:alias``)."""
    return channel.removed != channel.removed and not channel.config.pv.startswith("push:")
