"""PVAccess sources: p4p monitors with an explicit queue, decoded to :class:`Update`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from queue import SimpleQueue
from typing import Any

import numpy as np
from p4p import Value
from p4p.client import raw
from p4p.client.thread import Context, Disconnected, RemoteError

from epics_collector.core import SourceListener, Update, posix_seconds
from epics_collector.pva import Network

Decoder = Callable[[Value], Any]
log = logging.getLogger(__name__)


def _decoder(value: Value) -> Decoder:
    """How to get a Python value out of this source's Values (chosen on the first one)."""
    nt = value.getID()
    if nt.startswith("epics:nt/NTEnum:"):
        return lambda v: v["value.index"]
    if nt.startswith("epics:nt/NTNDArray:"):

        def image(v: Value) -> np.ndarray:
            # a read-only view of the frame's own (immutable) pixel buffer, no copy
            shape = [d["size"] for d in reversed(v["dimension"])]
            return np.asarray(v["value"]).reshape(shape)

        return image
    if "value" not in value:
        raise ValueError(f"{nt or 'structure'} has no value field")
    if isinstance(value["value"], np.ndarray):
        # a view of the Value's own (immutable) array, which the view keeps alive; the
        # recorder copies it into its ring, so no copy here
        return lambda v: v["value"]
    return lambda v: v["value"]


def _sequence(value: Value) -> Callable[[Value], int] | None:
    """How to read a source's update sequence number, if it carries one (NTNDArray)."""
    if value.getID().startswith("epics:nt/NTNDArray:") and "uniqueId" in value:
        return lambda v: v["uniqueId"]
    return None


def _stamp(value: Value) -> tuple[float, int, int]:
    try:
        seconds = posix_seconds(value["timeStamp.secondsPastEpoch"], value["timeStamp.nanoseconds"])
        return seconds, value["alarm.severity"], value["alarm.status"]
    except KeyError:  # a plain structure without timeStamp/alarm: stamp on arrival
        return time.time(), 0, 0


class _Drainer:
    """One thread that drains every monitor queue of a :class:`PvaSources`, in order.

    p4p's wakeup callback only queues the subscription (``SimpleQueue``, in C); the
    thread then pops all of that subscription's updates. Cheaper than p4p's thread
    client (a Python ``Queue`` hop per wakeup, four updates at a time), and it keeps
    p4p's network thread free while updates are recorded.
    """

    def __init__(self) -> None:
        self.wakeups: SimpleQueue[_PvaSubscription | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pva-sources", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (subscription := self.wakeups.get()) is not None:
            try:
                subscription.drain()
            except Exception as error:  # one source's failure must not stop the others
                subscription.failed(error)
                self.wakeups.put(subscription)  # the rest of its queue: no wakeup comes

    def stop(self) -> None:
        self.wakeups.put(None)
        self._thread.join()


class _PvaSubscription:
    """One monitor; reports updates, connection changes and losses to its listener.

    Losses: p4p 4.3 does not tell how many updates pvxs squashed into the newest entry
    of a full queue. A squash needs ``queue_size`` updates queued at once, all arrived
    since the queue was last seen empty, so a drain that pops ``queue_size`` updates
    before it sees the queue empty reports a possible overrun (never a miss; a false
    alarm only while the source outruns the drain for a whole queue). Sources with a
    sequence number (NTNDArray ``uniqueId``) report the exact gap instead: a squash
    always leaves one.
    """

    def __init__(
        self, ctx: Any, drainer: _Drainer, name: str, listener: SourceListener, queue_size: int
    ):
        self.name, self._listener, self._ctx = name, listener, ctx
        self._queue_size = queue_size if queue_size > 1 else 4  # pvxs's default below 2
        self._connected = False
        self._undecodable = False  # the last update could not be decoded (reported once)
        self._decode: Decoder | None = None
        self._sequence: Callable[[Value], int] | None = None
        self._last_number: int | None = None
        self._failures = 0
        self._sub: Any = None
        request = f"record[queueSize={queue_size}]field()"
        wake = partial(drainer.wakeups.put, self)
        self._sub = raw.Context.monitor(ctx, name, wake, request)
        wake()  # anything queued before the subscription was stored

    def drain(self) -> None:
        """Process every queued update (on the drainer thread)."""
        sub, popped = self._sub, 0
        while sub is not None:
            item = sub.pop()
            if item is None:
                return
            popped += 1
            if popped == self._queue_size and self._sequence is None:
                # (a numbered source's losses are counted exactly from its numbers)
                self._listener.on_loss(None)
            self._event(item)

    def _event(self, value: Value | Exception) -> None:
        if isinstance(value, Exception):
            reason = "disconnected" if isinstance(value, Disconnected) else str(value)
            if isinstance(value, RemoteError) or self._connected:
                self._connected = False
                self._last_number = None  # what is posted meanwhile lies inside the gap
                self._listener.on_connection(False, reason)
            return
        try:
            if self._decode is None:
                self._decode = _decoder(value)
                self._sequence = _sequence(value)
            seconds, severity, status = _stamp(value)
            number = self._sequence(value) if self._sequence is not None else None
            update = Update(self._decode(value), seconds, severity, status, number)
        except Exception as error:  # an undecodable source is reported, never fatal
            self._decode = None  # the source may have changed its type: choose again
            if self._connected or not self._undecodable:  # once, not per update
                self._connected, self._undecodable = False, True
                self._listener.on_connection(False, f"cannot decode {self.name}: {error}")
            return
        self._undecodable = False
        if not self._connected:  # connected, or decodable again: say so
            self._connected = True
            self._listener.on_connection(True, "connected")
        if number is not None:
            self._check_sequence(number)
        self._listener.on_update(update)

    def failed(self, error: Exception) -> None:
        """Handling an update raised (drainer thread): a bug, not a source's fault.

        The first failure is logged with its traceback; the source shows as not
        connected (with the error) until the next update is handled. Listeners count
        what they lose themselves (the collector's recorder does).
        """
        self._failures += 1
        if self._failures == 1:
            log.error("%s: handling an update failed", self.name, exc_info=error)
        try:
            self._connected = False
            self._listener.on_connection(
                False,
                f"recording its updates failed ({self._failures} so far): "
                f"{type(error).__name__}: {error}",
            )
        except Exception:  # the listener itself is broken: the log is all that is left
            log.exception("%s: reporting a failure failed", self.name)

    def _check_sequence(self, number: int) -> None:
        last, self._last_number = self._last_number, number
        if last is not None and number > last + 1:
            self._listener.on_loss(number - last - 1)
        # number <= last: the source restarted its numbering; nothing is known lost

    def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.close()
            # drop the channel if nothing else uses it: a later subscription then searches
            # at once instead of inheriting this channel's backed-off search schedule
            self._ctx.disconnect(self.name)


class PvaSources:
    """Opens PVA monitors; one thread records every update, in order per source."""

    def __init__(self, network: Network) -> None:
        self._ctx: Any = Context("pva", conf=network.client_conf(), useenv=network.useenv, nt=False)
        self._drainer = _Drainer()

    def subscribe(
        self, name: str, listener: SourceListener, *, queue_size: int
    ) -> _PvaSubscription:
        """Monitor ``name`` with ``record[queueSize=queue_size]``."""
        return _PvaSubscription(self._ctx, self._drainer, name, listener, queue_size)

    async def put(self, name: str, value: Any) -> None:
        """Put and wait (in an executor: p4p's thread client blocks)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, partial(self._ctx.put, name, value, timeout=5.0))

    def detach(self) -> None:
        """Nothing is bound to an event loop."""

    def close(self) -> None:
        """Close the client context (and with it every subscription)."""
        self._ctx.close()
        self._drainer.stop()
