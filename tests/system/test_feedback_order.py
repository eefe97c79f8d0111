"""Feedback at 1 kHz into a slow target: in output order, never stale, never a backlog.

Issue 40, finding 1: each run scheduled its own put through a thread pool, so puts could
land in any order and piled up (852 of 5,214 outputs written, still arriving tens of
seconds late). Now each target has one writer: one put at a time, and the newest output
waits for it, replacing any older one.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from epics_collector.process import wait_for

pytestmark = pytest.mark.system

RATE, SECONDS = 1000, 3.0
#: How far behind the newest output a written value may be when it arrives: the one put
#: in flight (up to 20 ms) and the time from a post to the put, with room for a loaded
#: machine. The earlier code was thousands of outputs behind.
SLACK = 200


class SlowTarget:
    """A p4p put handler that answers after 0-20 ms, on a timer (the server stays free)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived: list[tuple[float, int]] = []  # (value, newest posted at arrival)
        self.in_flight = self.most_in_flight = 0
        self.newest_posted = 0

    def put(self, pv: Any, op: Any) -> None:
        value = float(op.value())
        with self.lock:
            self.arrived.append((value, self.newest_posted))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

        def finish() -> None:
            pv.post(value, timestamp=time.time())
            with self.lock:
                self.in_flight -= 1
            op.done()

        threading.Timer(random.uniform(0.0, 0.02), finish).start()


def test_feedback_at_1_khz_is_in_order_fresh_and_one_put_at_a_time(
    network, device_process, prefix, ctx
) -> None:
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    source = SharedPV(nt=NTScalar("d"), initial=0.0)
    slow = SlowTarget()
    target = SharedPV(nt=NTScalar("d"), initial=0.0, handler=slow)
    provider = StaticProvider("feedback-order")
    provider.add(prefix + "in", source)
    provider.add(prefix + "target", target)
    device = prefix + "FB:"
    total = int(RATE * SECONDS)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        source.post(0.0, timestamp=time.time())
        device_process(
            "processing",
            device,
            {
                "inputs": {"a": prefix + "in"},
                "processor": {"name": "calc", "params": {"expression": "a"}},
                "feedback": [
                    {"output": "result", "target": prefix + "target", "low": -1, "high": 1e9}
                ],
            },
        )
        ctx.put(device + "FeedbackEnable", 1)
        started = time.monotonic()
        for k in range(1, total + 1):
            source.post(float(k), timestamp=time.time())
            with slow.lock:
                slow.newest_posted = k
            ahead = started + k / RATE - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # paces the source at RATE, it is not a wait on a result
        wait_for(lambda: float(ctx.get(prefix + "target")) == total, 20, "the last output")
        skipped = int(ctx.get(device + "FeedbackSkipped"))
    values = [value for value, _ in slow.arrived]
    assert values == sorted(set(values)), "a put landed out of output order"
    assert slow.most_in_flight == 1, f"{slow.most_in_flight} puts at once to one target"
    stale = [(v, newest) for v, newest in slow.arrived if v < newest - SLACK]
    assert not stale, f"{len(stale)} writes far behind the newest output, e.g. {stale[:3]}"
    assert skipped == 0
