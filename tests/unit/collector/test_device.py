"""The collector device with in-memory sources: start/stop conditions, isolation, gaps."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from tests.doubles import InMemorySources

from epics_collector.collector import Collector

T = 1.7e9


async def until(condition, what: str, timeout: float = 5.0) -> None:
    """Let the event loop work until ``condition()`` holds; TimeoutError if it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.005)


def test_start_when_and_a_lost_channel_never_stop_the_others(tmp_path: Path) -> None:
    sources = InMemorySources()
    config = {
        "channels": [{"pv": "A", "alias": "a"}, {"pv": "B", "alias": "b"}],
        "start_when": {"pv": "BEAM", "when": "> 0.5"},
    }
    device = Collector(config, data_dir=tmp_path, sources=sources)

    async def scenario() -> None:
        await device.start()
        try:
            sources.connect("A", 1.0, T + 1)
            sources.connect("B", 10.0, T + 1)
            sources.connect("BEAM", 0.0, T + 1)
            await until(lambda: device.message.value == "all channels connected", "connected")
            assert device.state.value == "Idle" and device.recorder.count == 0
            sources.post("BEAM", 1.0, T + 2)  # the condition holds: recording starts
            await until(lambda: device.state.value == "Recording", "Recording")
            sources.post("A", 2.0, T + 3)
            sources.disconnect("B")  # one channel lost: a gap row, the other goes on
            sources.post("A", 3.0, T + 4)
            await until(lambda: "disconnected" in device.message.value, "the loss reported")
            a, b = device.recorder.channels
            assert list(device.recorder.history(a).value) == [1.0, 2.0, 3.0]
            gap = device.recorder.history(b)
            assert gap.value[0] == 10.0 and math.isnan(gap.value[-1]) and gap.severity[-1] == 3
            assert "b (B) disconnected" in device.message.value
            sources.post("BEAM", 0.0, T + 5)  # no stop_when: stops when start_when ends
            await until(lambda: device.state.value == "Stopped", "Stopped")
            sources.post("A", 4.0, T + 6)
            assert len(device.recorder.history(a)) == 3
        finally:
            await device.stop()

    asyncio.run(scenario())
