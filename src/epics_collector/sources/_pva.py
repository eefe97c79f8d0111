"""PVAccess sources: p4p monitors with an explicit queue, decoded to :class:`Update`."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from queue import SimpleQueue
from typing import Any

from p4p import Value
from p4p.client import raw
from p4p.client.thread import Context, Disconnected, RemoteError

from epics_collector.core import SourceListener, Update
from epics_collector.pva import Decoder, Network, decoder_for, sequence_for, stamp_and_alarm

log = logging.getLogger(__name__)


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
        self,
        ctx: Any,
        drainer: _Drainer,
        name: str,
        listener: SourceListener,
        queue_size: int,
        reviver: _Reviver,
        closer: _Closer,
    ):
        self.name, self._listener, self._ctx, self._reviver = name, listener, ctx, reviver
        self._closer = closer
        self._queue_size = queue_size if queue_size > 1 else 4  # pvxs's default below 2
        self._connected = False
        self._undecodable = False  # the last update could not be decoded (reported once)
        self._decode: Decoder | None = None
        self._sequence: Callable[[Value], int] | None = None
        self._last_number: int | None = None
        self._failures = 0
        self._sub: Any = None
        self._request = f"record[queueSize={queue_size}]field()"
        self._wake = partial(drainer.wakeups.put, self)
        self._lock = threading.Lock()  # one (re)subscription at a time
        self._renew_asked = False  # by the reviver; done by the drain thread
        self._sub = raw.Context.monitor(ctx, name, self._wake, self._request)
        self._wake()  # anything queued before the subscription was stored
        reviver.lost(self, new=True)  # until it connects

    def renew(self) -> None:
        """Ask for a new channel (reviver thread, while disconnected).

        pvxs searches for a lost channel with a growing back-off (seconds after the
        server is back); a new channel is searched for at once. The drain thread, which
        owns the subscription's state, renews it after draining the queue, and only if
        the channel is still disconnected then: updates pvxs queued meanwhile (the
        reconnection itself, values after it) are recorded, never thrown away with the
        old subscription.
        """
        self._renew_asked = True
        self._wake()

    def drain(self) -> None:
        """Process every queued update, then a renewal asked for (on the drainer thread)."""
        sub, popped = self._sub, 0
        while sub is not None:
            try:
                item = sub.pop()
            except Exception:
                if sub is not self._sub:  # closed meanwhile (close()): nothing to drain
                    return
                raise
            if item is None:
                break
            popped += 1
            if popped == self._queue_size and self._sequence is None:
                # (a numbered source's losses are counted exactly from its numbers)
                self._listener.on_loss(None)
            self._event(item)
        if self._renew_asked:
            self._renew_asked = False
            if not self._connected:  # still lost with an empty queue: a new channel
                self._resubscribe()

    def _resubscribe(self) -> None:
        """Subscribe again on a new channel (drain thread).

        The old subscription is closed first: while it holds the channel, ``disconnect``
        keeps it, and the new monitor would wait for that channel's backed-off search.
        """
        with self._lock:  # close() may run on another thread
            if self._sub is None:
                return
            self._sub.close()
            self._ctx.disconnect(self.name)
            self._sub = raw.Context.monitor(self._ctx, self.name, self._wake, self._request)

    def _event(self, value: Value | Exception) -> None:
        if isinstance(value, Exception):
            reason = "disconnected" if isinstance(value, Disconnected) else str(value)
            if isinstance(value, RemoteError) or self._connected:
                self._connected = False
                self._last_number = None  # what is posted meanwhile lies inside the gap
                self._reviver.lost(self)
                self._listener.on_connection(False, reason)
            return
        try:
            if self._decode is None:
                self._decode = decoder_for(value)
                self._sequence = sequence_for(value)
            seconds, severity, status, exact = stamp_and_alarm(value)
            number = self._sequence(value) if self._sequence is not None else None
            update = Update(self._decode(value), seconds, severity, status, number, exact)
        except Exception as error:  # an undecodable source is reported, never fatal
            self._decode = None  # the source may have changed its type: choose again
            if self._connected or not self._undecodable:  # once, not per update
                self._connected, self._undecodable = False, True
                self._listener.on_connection(False, f"cannot decode {self.name}: {error}")
            return
        self._undecodable = False
        if not self._connected:  # connected, or decodable again: say so
            self._connected = True
            self._reviver.found(self)
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
        """Stop delivering updates now; the monitor itself is closed by the closer."""
        self._reviver.found(self)
        with self._lock:
            sub, self._sub = self._sub, None
        if sub is not None:
            self._closer.close(sub, self.name)


class _Reviver:
    """Subscribes disconnected sources again on new channels (issue 18, finding 7).

    A restarted server is then found within ``RETRY[0]`` seconds of its return instead
    of at pvxs's next backed-off search.

    A source disconnected for up to 2 minutes is retried every 0.3 s, then every 2 s up
    to 10 minutes, then every 10 s; at most ``MAX_RATE`` retries a second in all (a
    retry is a search request), oldest due first. A new subscription is first left to
    pvxs's own search for ``FIRST_GRACE`` seconds: 100,000 new channels are found by one
    round of searches, and renewing them meanwhile would only start their search again.
    Due times are kept in a heap, so a tick costs the retries it makes, not the number of
    sources lost.
    """

    RETRY = ((120.0, 0.3), (600.0, 2.0), (float("inf"), 10.0))  # (lost for up to, every)
    FIRST_GRACE = 5.0
    MAX_RATE = 200.0
    TICK = 0.1

    def __init__(self) -> None:
        self._lost: dict[_PvaSubscription, tuple[float, int]] = {}  # -> (since, generation)
        self._due: list[tuple[float, int, int, _PvaSubscription]] = []  # heap
        self._generation = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pva-reviver", daemon=True)
        self._thread.start()

    def lost(self, subscription: _PvaSubscription, *, new: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if subscription in self._lost:
                return
            generation = next(self._generation)
            self._lost[subscription] = (now, generation)
            first = self.FIRST_GRACE if new else self.RETRY[0][1]
            heapq.heappush(self._due, (now + first, generation, id(subscription), subscription))

    def found(self, subscription: _PvaSubscription) -> None:
        with self._lock:
            self._lost.pop(subscription, None)

    def _interval(self, lost_for: float) -> float:
        return next(every for up_to, every in self.RETRY if lost_for <= up_to)

    def _take_due(self, now: float, budget: int) -> list[_PvaSubscription]:
        """Pop up to ``budget`` due retries and schedule each one's next (under the lock)."""
        due: list[_PvaSubscription] = []
        while self._due and self._due[0][0] <= now and len(due) < budget:
            _, generation, key, sub = heapq.heappop(self._due)
            entry = self._lost.get(sub)
            if entry is None or entry[1] != generation:  # found (and maybe lost again)
                continue
            due.append(sub)
            heapq.heappush(self._due, (now + self._interval(now - entry[0]), generation, key, sub))
        if not self._lost:
            self._due.clear()  # only stale entries left
        return due

    def _run(self) -> None:
        budget = 0.0
        while not self._stop.wait(self.TICK):
            budget = min(budget + self.MAX_RATE * self.TICK, self.MAX_RATE)
            with self._lock:
                due = self._take_due(time.monotonic(), int(budget))
            budget -= len(due)
            for subscription in due:
                try:
                    subscription.renew()
                except Exception:  # a closed context while stopping, or a p4p error
                    log.exception("%s: subscribing again failed", subscription.name)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Closer:
    """Closes subscriptions on its own thread, so closing never waits on the caller's.

    Each pvxs close waits for the client's network thread, which spends a while on
    every search tick while many channels are searched for (a collector of 100,000
    channels whose servers are gone): closed one after another on the event loop they
    took minutes. Closed here, the caller goes on at once; closing the context ends what
    is still queued.
    """

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._queue: SimpleQueue[tuple[Any, str] | None] = SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pva-closer", daemon=True)
        self._thread.start()

    def close(self, sub: Any, name: str) -> None:
        self._queue.put((sub, name))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None and not self._stopping.is_set():
            sub, name = item
            try:
                sub.close()
                # drop the channel if nothing else uses it: a later subscription then
                # searches at once instead of inheriting this one's backed-off schedule
                self._ctx.disconnect(name)
            except Exception:
                log.exception("%s: closing the subscription failed", name)

    def stop(self) -> None:
        """Drop what is still queued (the context closes it) after the close under way."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join()


class PvaSources:
    """Opens PVA monitors; one thread records every update, in order per source."""

    def __init__(self, network: Network) -> None:
        self._ctx: Any = Context("pva", conf=network.client_conf(), useenv=network.useenv, nt=False)
        self._drainer = _Drainer()
        self._reviver = _Reviver()
        self._closer = _Closer(self._ctx)

    def subscribe(
        self, name: str, listener: SourceListener, *, queue_size: int
    ) -> _PvaSubscription:
        """Monitor ``name`` with ``record[queueSize=queue_size]``."""
        return _PvaSubscription(
            self._ctx, self._drainer, name, listener, queue_size, self._reviver, self._closer
        )

    async def put(self, name: str, value: Any) -> None:
        """Put and wait (in an executor: p4p's thread client blocks)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, partial(self._ctx.put, name, value, timeout=5.0))

    def detach(self) -> None:
        """Nothing is bound to an event loop."""

    def close(self) -> None:
        """Close the client context (and with it every subscription)."""
        self._reviver.stop()
        self._closer.stop()
        self._ctx.close()
        self._drainer.stop()
