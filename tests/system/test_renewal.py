"""A lost source's renewal never throws away updates pvxs has queued (issue 40, finding 2).

The reviver asks for a new channel while a source is lost; before the fix it closed the
subscription itself, on its own thread, whenever the drain thread had not yet seen the
reconnection: a drain that lagged lost the reconnection and every value queued after it,
and the history showed a longer gap than the source had. Now the drain thread renews,
after draining the queue, and only if the channel is still lost then.

Each of three cycles drops the source, holds the drain thread while pvxs finds the source
again and the server posts a burst at 10 kHz into the waiting queue, then lets the
drain go: every value posted since the server saw the client come back must arrive.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from epics_collector.core import Update
from epics_collector.process import wait_for
from epics_collector.sources import PvaSources

pytestmark = pytest.mark.system

CYCLES = 3
BURST = 2000  # values posted at 10 kHz while the drain thread is held
HOLD = 0.6  # seconds the drain thread is held after the server saw the client back


class Attached:
    """The server's side: whether a client monitors the PV now (p4p handler hooks)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def onFirstConnect(self, pv: Any) -> None:  # noqa: N802 (p4p's name)
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def onLastDisconnect(self, pv: Any) -> None:  # noqa: N802 (p4p's name)
        """Nothing to do: the count says how often a client came."""


class HeldListener:
    """Records what arrives; a disconnect holds the drain thread until released."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.losses = 0
        self.connected = False
        self.hold = threading.Event()  # set: the next disconnect holds the drain thread
        self.release = threading.Event()
        self.held = threading.Event()

    def on_update(self, update: Update) -> None:
        self.values.append(float(update.value))

    def on_connection(self, connected: bool, reason: str) -> None:
        self.connected = connected
        if not connected and self.hold.is_set():
            self.hold.clear()
            self.held.set()
            self.release.wait(30.0)  # the drain thread lags: the queue fills meanwhile

    def on_loss(self, missing: int | None) -> None:
        self.losses += 1


@pytest.mark.timeout(180)
def test_values_queued_while_the_drain_lags_a_reconnection_all_arrive(network, prefix):
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    attached = Attached()
    pv = SharedPV(nt=NTScalar("d"), initial=0.0, handler=attached)
    provider = StaticProvider("renewal")
    name = prefix + "src"
    provider.add(name, pv)
    listener = HeldListener()
    sources = PvaSources(network)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        subscription = sources.subscribe(name, listener, queue_size=BURST * 2)
        try:
            wait_for(lambda: listener.connected, 10, "the first connection")
            value = 0.0
            for cycle in range(CYCLES):
                listener.hold.set()
                listener.release.clear()
                with attached.changed:
                    came = attached.count
                pv.close(destroy=True)  # the source goes away: clients see a disconnect
                wait_for(listener.held.is_set, 10, "the drain thread held at the disconnect")
                listener.held.clear()
                received = len(listener.values)
                value += 1.0
                pv.open(value, timestamp=time.time())  # back, and found again by pvxs
                with attached.changed:
                    assert attached.changed.wait_for(lambda c=came: attached.count > c, 30), (
                        f"cycle {cycle}: the client never came back"
                    )
                first = value  # what the client gets on connecting, and all posted after
                for _ in range(BURST):  # 10 kHz, into the held subscription's queue
                    value += 1.0
                    pv.post(value, timestamp=time.time())
                    time.sleep(0.0001)
                # the reviver asks for renewals meanwhile (every 0.3 s while lost)
                time.sleep(HOLD)  # the lag under test, not a wait on a result
                listener.release.set()
                wait_for(
                    lambda v=value: bool(listener.values) and listener.values[-1] == v,
                    10,
                    "the burst",
                )
                got = listener.values[received:]
                expected = [first + k for k in range(BURST + 1)]
                lost = len(expected) - len([v for v in expected if v in set(got)])
                assert got == expected, (
                    f"cycle {cycle}: {lost} of {len(expected)} values queued by pvxs never "
                    f"arrived (first {got[:1]}, wanted from {first}); losses counted: "
                    f"{listener.losses}"
                )
        finally:
            listener.release.set()
            subscription.close()
            sources.close()
