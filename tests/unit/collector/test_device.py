"""The collector device with in-memory sources: start/stop conditions, isolation, gaps."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from tests.doubles import InMemorySources

from epics_collector.collector import Collector
from epics_collector.process import wait_for_async

T = 1.7e9


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
            await wait_for_async(
                lambda: device.message.value == "all channels connected", 5.0, "connected"
            )
            assert device.state.value == "Idle" and device.recorder.count == 0
            sources.post("BEAM", 1.0, T + 2)  # the condition holds: recording starts
            await wait_for_async(lambda: device.state.value == "Recording", 5.0, "Recording")
            sources.post("A", 2.0, T + 3)
            sources.disconnect("B")  # one channel lost: a gap row, the other goes on
            sources.post("A", 3.0, T + 4)
            await wait_for_async(
                lambda: "disconnected" in device.message.value, 5.0, "the loss reported"
            )
            a, b = device.recorder.channels
            assert list(device.recorder.history.rows(a).value) == [1.0, 2.0, 3.0]
            gap = device.recorder.history.rows(b)
            assert gap.value[0] == 10.0 and math.isnan(gap.value[-1]) and gap.severity[-1] == 3
            assert "b (B) disconnected" in device.message.value
            sources.post("BEAM", 0.0, T + 5)  # no stop_when: stops when start_when ends
            await wait_for_async(lambda: device.state.value == "Stopped", 5.0, "Stopped")
            sources.post("A", 4.0, T + 6)
            assert len(device.recorder.history.rows(a)) == 3
        finally:
            await device.stop()

    asyncio.run(scenario())


def test_a_limit_reached_by_the_values_at_start_is_said_by_its_own_event(
    tmp_path: Path,
) -> None:
    """Issue 40, slip: _start guessed "sample limit reached" for whatever stopped the run."""
    sources = InMemorySources()
    config = {
        "channels": [{"pv": "A", "alias": "a"}, {"pv": "B", "alias": "b"}],
        "limits": {"samples": 1},
    }
    device = Collector(config, data_dir=tmp_path, sources=sources)

    async def scenario() -> None:
        await device.start()
        try:
            sources.connect("A", 1.0, T + 1)
            sources.connect("B", 2.0, T + 1)
            await wait_for_async(
                lambda: device.message.value == "all channels connected", 5.0, "connected"
            )
            await device.put("Start", 1)  # the current values reach the limit of 1
            await wait_for_async(lambda: device.state.value == "Stopped", 5.0, "Stopped")
            assert "sample limit of 1 reached" in device.message.value, device.message.value
        finally:
            await device.stop()

    asyncio.run(scenario())


def test_a_kind_found_from_the_source_is_kept_on_disk_for_the_next_run(tmp_path: Path) -> None:
    """kind auto, persisted: the restarted collector reloads string rows as strings."""
    config = {"channels": [{"pv": "NOTE", "alias": "note"}], "persist": True, "autostart": True}

    async def run(post: str | None) -> list[str]:
        sources = InMemorySources()
        device = Collector(config, data_dir=tmp_path, sources=sources)
        await device.start()
        try:
            (note,) = device.recorder.channels
            if post is not None:
                sources.connect("NOTE", post, T + 1)
                await wait_for_async(lambda: note.kind == "string", 5.0, "the kind")
            return [note.kind, *device.recorder.history.rows(note).value]
        finally:
            await device.stop()

    assert asyncio.run(run("ready")) == ["string", "ready"]
    kind, *rows = asyncio.run(run(None))  # found before any update (and the outage: "")
    assert kind == "string" and rows == ["ready", ""]
