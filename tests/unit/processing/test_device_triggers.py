"""Trigger modes of a processing device, driven through in-memory sources (no network)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.doubles import InMemorySources

from epics_collector.process import wait_for
from epics_collector.processing import Processing

T = 1.7e9


async def _results(
    trigger: str, posts: list[tuple[str, float]], tmp_path: Path, runs: int
) -> list[float]:
    sources = InMemorySources()
    config = {
        "inputs": {"a": "A", "b": "B"},
        "trigger": trigger,
        "processor": {"name": "calc", "params": {"expression": "a * 2 + b"}},
    }
    device = Processing(config, data_dir=tmp_path, sources=sources)
    results: list[float] = []
    device.pvs["result"].add_listener(lambda reading: results.append(float(reading.value)))
    await device.start()
    try:
        for name in ("A", "B"):  # connect with current values 0
            await asyncio.to_thread(sources.connect, name, 0.0, T)
        for offset, (name, value) in enumerate(posts, start=1):
            await asyncio.to_thread(sources.post, name, value, T + offset)

        # runs happen on the processing thread, in the worker: wait for them, and for
        # nothing left to run (so a run too many would show)
        def done() -> bool:
            idle = not len(device.runs) and not device.runner.busy
            return len(results) >= runs and idle

        await asyncio.to_thread(wait_for, done, 10, f"{runs} runs")
        return results
    finally:
        await device.stop()


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        # every update runs (once every input has a value) with the newest of the others
        ("any", [0.0, 2.0, 4.0, 8.0, 11.0]),
        # only a's updates run; b's newest is used
        ("a", [0.0, 2.0, 8.0]),
        # a run once every input has an unprocessed update: pairs in arrival order
        ("all", [0.0, 4.0, 11.0]),
    ],
)
def test_trigger_modes(trigger: str, expected: list[float], tmp_path: Path) -> None:
    posts = [("a", 1.0), ("b", 2.0), ("a", 3.0), ("b", 5.0)]
    posts = [("A" if n == "a" else "B", v) for n, v in posts]
    assert asyncio.run(_results(trigger, posts, tmp_path, len(expected))) == expected
