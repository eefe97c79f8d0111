"""What the PVA layer relies on in p4p's internals (``pva._p4p``), against a real server.

Each test is one behaviour of the installed p4p; an upgrade that changes it fails here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from p4p import Value
from p4p.client.thread import Context
from p4p.client.thread import TimeoutError as GetTimeout
from p4p.nt import NTScalar
from p4p.server import Server, StaticProvider

from epics_collector.process import wait_for
from epics_collector.pva import Network
from epics_collector.pva._p4p import ServedPV, on_pvxs_thread, post_value

TYPE = NTScalar("d")


@pytest.fixture
def serve(network: Network) -> Iterator[Any]:
    """Serve PVs on loopback: ``serve(name, pv)``; a client Context is ``serve.ctx``."""
    provider = StaticProvider("test-p4p")
    server = Server(providers=[provider], conf=network.server_conf(), useenv=False)
    ctx = Context("pva", conf=network.client_conf(), useenv=False)

    def add(name: str, pv: ServedPV) -> None:
        provider.add(name, pv)

    add.ctx = ctx  # type: ignore[attr-defined]
    yield add
    ctx.close()
    server.stop()


@pytest.fixture
def idle() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop that never runs: a callback p4p sent to it would never happen."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_served_pv_is_made_off_the_loop_and_post_value_reaches_clients(serve, idle) -> None:
    made: list[ServedPV] = []
    thread = threading.Thread(target=lambda: made.append(ServedPV(idle, None, TYPE.wrap(1.0))))
    thread.start()
    thread.join()
    serve("P4P:post", made[0])
    seen: list[float] = []
    sub = serve.ctx.monitor("P4P:post", lambda value: seen.append(float(value)))
    wait_for(lambda: seen == [1.0], 5, "the initial value")
    post_value(made[0], TYPE.wrap(2.5))  # a Value, posted unwrapped
    wait_for(lambda: seen == [1.0, 2.5], 5, "the posted value")
    sub.close()


def test_a_marked_callback_runs_on_pvxs_s_thread_without_the_loop(serve, idle) -> None:
    ran_on: list[int] = []

    class Handler:
        @on_pvxs_thread
        def onFirstConnect(self, pv: ServedPV) -> None:  # noqa: N802 (p4p's name)
            ran_on.append(threading.get_ident())
            pv.open(TYPE.wrap(7.0))  # the open on the server thread: no deadlock

    serve("P4P:first", ServedPV(idle, Handler(), None))
    assert serve.ctx.get("P4P:first", timeout=5) == 7.0
    assert ran_on and ran_on[0] != threading.get_ident()


def test_an_unmarked_callback_runs_on_the_loop(serve) -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    put_on: list[int] = []

    class Handler:
        async def put(self, pv: ServedPV, op: Any) -> None:
            put_on.append(threading.get_ident())
            pv.post(op.value())
            op.done()

    serve("P4P:put", ServedPV(loop, Handler(), TYPE.wrap(0.0)))
    serve.ctx.put("P4P:put", 3.0, timeout=5)
    assert put_on == [runner.ident]
    loop.call_soon_threadsafe(loop.stop)
    runner.join(5)
    loop.close()


def test_a_failing_marked_callback_is_logged_and_the_server_goes_on(
    serve, idle, caplog: pytest.LogCaptureFixture
) -> None:
    class Handler:
        @on_pvxs_thread
        def onFirstConnect(self, pv: ServedPV) -> None:  # noqa: N802 (p4p's name)
            raise RuntimeError("handler bug")

    serve("P4P:bad", ServedPV(idle, Handler(), None))
    serve("P4P:good", ServedPV(idle, None, TYPE.wrap(1.0)))
    with caplog.at_level(logging.ERROR), pytest.raises(GetTimeout):
        serve.ctx.get("P4P:bad", timeout=1)
    assert "handler bug" in caplog.text
    assert serve.ctx.get("P4P:good", timeout=5) == 1.0


def test_a_post_of_some_fields_keeps_the_others_for_every_client(serve, idle) -> None:
    """``_Poster`` posts an unchanged alarm once: pvxs merges a post's marked fields."""
    pv = ServedPV(idle, None, TYPE.wrap(1.0))
    serve("P4P:merge", pv)
    seen: list[Any] = []
    sub = serve.ctx.monitor("P4P:merge", seen.append)
    wait_for(lambda: len(seen) == 1, 5, "the initial value")
    post_value(pv, Value(TYPE.type, {"value": 2.0, "alarm": {"severity": 2, "message": "hi"}}))
    post_value(pv, Value(TYPE.type, {"value": 3.0, "timeStamp": {"secondsPastEpoch": 7}}))
    wait_for(lambda: len(seen) == 3, 5, "both posts")
    assert (float(seen[2]), seen[2].severity, seen[2].raw.alarm.message) == (3.0, 2, "hi")
    got = serve.ctx.get("P4P:merge")  # a client that comes later sees the merged value
    assert (float(got), got.severity, got.timestamp) == (3.0, 2, 7.0)
    sub.close()
