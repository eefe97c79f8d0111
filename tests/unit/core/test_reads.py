"""The read pool gives way to recording: it rests between reads only while busy."""

from __future__ import annotations

import asyncio
import threading
import time

from epics_collector.core._reads import MAX_REST, PACE, ReadLimits, ReadPool


def test_reads_rest_between_them_only_while_recording_is_busy() -> None:
    arrivals = [0]
    busy = threading.Event()

    def feed() -> None:
        while busy.is_set():
            arrivals[0] += 100  # 100,000 a second: recording is busy
            time.sleep(0.001)

    starts: list[float] = []

    def read() -> None:
        starts.append(time.monotonic())
        end = time.monotonic() + 0.02
        while time.monotonic() < end:
            pass

    async def three_reads() -> list[float]:
        pool = ReadPool(ReadLimits.model_validate({}), arrivals=lambda: arrivals[0])
        starts.clear()
        for _ in range(3):
            await pool.run("host", read)
        pool.close()
        return [b - a for a, b in zip(starts, starts[1:], strict=False)]

    idle = asyncio.run(three_reads())
    busy.set()
    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        paced = asyncio.run(three_reads())
    finally:
        busy.clear()
        feeder.join()
    assert max(idle) < MAX_REST / 2, idle
    assert min(paced) >= MAX_REST * 0.9, paced


def test_building_a_reads_answer_counts_in_its_rest() -> None:
    """A cheap read with a costly answer (a page of 50,000 rows made into an NTTable)."""

    async def answered(build: float) -> float:
        pool = ReadPool(ReadLimits.model_validate({}), arrivals=None)
        await pool.run("host", lambda: None)  # the read itself: nothing
        began = time.monotonic()
        while time.monotonic() - began < build:  # the caller builds the answer, same step
            pass
        await asyncio.sleep(0)  # (the pool's callback runs after that step)
        pool.close()
        return pool._rest_until - began

    assert asyncio.run(answered(0.0)) < 0.05
    assert asyncio.run(answered(0.002)) >= 0.002 * PACE * 0.9
