"""One owner per PV: the owner-thread check, the one hand-off to the loop, one lock."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from epics_collector.core import AttrR, Device, Float, Int, Reading, WrongThreadError
from epics_collector.process import wait_for_async


def _on_thread(function: Any) -> BaseException | None:
    """Run ``function`` on a new thread; what it raised, if anything."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            function()
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_a_claimed_attribute_set_from_another_thread_raises() -> None:
    attr = AttrR(Int(), name="Count")
    attr.set(1)  # not claimed yet: a constructor sets it anywhere
    attr.claim()
    attr.set(2)  # its owner
    error = _on_thread(lambda: attr.set(3))
    assert isinstance(error, WrongThreadError) and "Count" in str(error)
    assert attr.value == 2  # nothing stored


def test_any_thread_and_on_demand_attributes_are_exempt() -> None:
    output = AttrR(Float(), name="out", any_thread=True)
    history = AttrR(Float(), name="H:Value")
    history.refresh = lambda: None
    for attr in (output, history):
        attr.claim()
        assert _on_thread(lambda attr=attr: attr.set(1.0)) is None
        assert attr.value == 1.0


def test_store_and_post_are_one_step() -> None:
    attr = AttrR(Int(), name="N", any_thread=True)
    posted: list[Reading] = []
    attr.add_listener(posted.append)

    def hammer(base: int) -> None:
        for i in range(5000):
            attr.set(base + i)

    threads = [threading.Thread(target=hammer, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(posted) == 20_000
    assert attr.reading is posted[-1]  # the value kept is the one served last


def test_call_soon_runs_on_the_loop_in_order_and_logs_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    device = Device({})
    ran: list[tuple[int, int]] = []

    def boom() -> None:
        raise RuntimeError("handler bug")

    async def main() -> None:
        await device.start()
        loop_thread = threading.get_ident()

        def hand_over() -> None:
            for i in range(100):
                device.call_soon(lambda i=i: ran.append((i, threading.get_ident())))
            device.call_soon(boom)
            device.call_soon(lambda: ran.append((100, threading.get_ident())))

        await asyncio.to_thread(hand_over)
        await wait_for_async(lambda: len(ran) == 101, 5, "the 101 calls handed over")
        await device.stop()
        assert {thread for _, thread in ran} == {loop_thread}

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert [i for i, _ in ran] == list(range(101))
    assert "handler bug" in caplog.text
