"""Every device describes its PVs in ``P:PVI``, as ophyd-async's PviDeviceConnector reads it.

Checked with a plain p4p client (every entry names a PV that answers, with the access
it says) and with ophyd-async itself; a collector's PVI stays the same size however many
channels it has, each channel describing itself in ``P:<alias>:PVI`` on demand.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from p4p import Value
from p4p.client.thread import Context

from epics_collector.process import wait_for

pytestmark = pytest.mark.system


def _entries(ctx: Context, name: str) -> dict[str, dict[str, str]]:
    return cast(Any, ctx.get(name, timeout=5))["value"].todict()


def _check_every_entry_answers(ctx: Context, entries: dict[str, dict[str, str]]) -> None:
    for field, entry in entries.items():
        ((access, pv),) = entry.items()
        if access == "d":
            _check_every_entry_answers(ctx, _entries(ctx, pv))
            continue
        value = ctx.get(pv, timeout=5)  # it answers
        if access == "x":  # a command: put 1 runs it, it reads 0
            assert (value["value"] if isinstance(value, Value) else value) == 0, field


def test_a_collector_describes_its_pvs_and_each_channels(collector, prefix, ctx) -> None:
    channels = [{"pv": f"{prefix}src{i}", "alias": f"c{i}"} for i in range(200)]
    collector({"channels": channels})
    top = _entries(ctx, prefix + "PVI")
    assert top["count"] == {"r": prefix + "Count"}
    assert top["start_recording"] == {"x": prefix + "Start"}
    assert top["export_name"] == {"rw": prefix + "Export"}
    assert top["state"] == {"r": prefix + "State"}
    assert not any(field.startswith("c1") for field in top), "channels are not listed"
    _check_every_entry_answers(ctx, top)
    channel = _entries(ctx, prefix + "c7:PVI")
    assert channel["table"] == {"r": prefix + "c7:Table"}
    assert channel["view"] == {"d": prefix + "c7:View:PVI"}
    _check_every_entry_answers(ctx, channel)
    assert _entries(ctx, prefix + "c7:View:PVI")["start"] == {"rw": prefix + "c7:View:Start"}


def test_a_collector_s_pvi_does_not_grow_with_its_channels(collector, prefix, ctx) -> None:
    sizes = []
    for count in (1, 2000):
        name = f"{prefix}N{count}:"
        collector({"channels": [f"{prefix}s{i}" for i in range(count)]}, name)
        sizes.append(len(_entries(ctx, name + "PVI")))
    assert sizes[0] == sizes[1]


def test_ophyd_async_builds_a_device_from_the_pvi_alone(processing, prefix, network) -> None:
    ophyd = pytest.importorskip("ophyd_async.core")
    from ophyd_async.epics.core import PviDeviceConnector

    processing(
        {
            "inputs": {"a": f"{prefix}nothing"},
            "processor": {"name": "calc", "params": {"expression": "a * 2"}},
        }
    )

    async def build() -> set[str]:
        device = ophyd.Device(name="proc", connector=PviDeviceConnector(prefix))
        await device.connect(timeout=10)
        await device.param_expression.set("a * 3")  # type: ignore[attr-defined]
        assert await device.enable.get_value() == 1  # type: ignore[attr-defined]
        return {name for name, _ in device.children()}

    children = asyncio.run(build())
    assert {"output_result", "param_expression", "count", "reset_counters"} <= children
    with Context("pva", conf=network.client_conf(), useenv=False) as fresh:
        wait_for(lambda: fresh.get(prefix + "Param:expression") == "a * 3", 5, "the put")
