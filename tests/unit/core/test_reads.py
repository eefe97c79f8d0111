"""The read pool gives way to recording: it rests between reads only while busy."""

from __future__ import annotations

import asyncio
import threading
import time

from epics_collector.core._reads import MAX_REST, ReadLimits, ReadPool


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
