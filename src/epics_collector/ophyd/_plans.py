"""Plan stubs: record a whole plan's run with a collector; create devices inside plans."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg
from ophyd_async.plan_stubs import ensure_connected

from epics_collector.client import AsyncFactory
from epics_collector.ophyd._collector import CollectorDevice
from epics_collector.ophyd._context import shared_connection

Plan = Generator[Msg, Any, Any]


def collect_channels(collector: CollectorDevice) -> Plan:
    """Stop the collector and emit each channel's stream (inside an open run)."""
    yield from bps.complete(collector, wait=True)
    for channel in collector.channels.values():
        collectable: Any = channel  # a Collectable (bluesky's stubs ask for more)
        yield from bps.declare_stream(collectable, name=channel.name, collect=True)
        yield from bps.collect(collectable, name=channel.name)


def record_during(collector: CollectorDevice, plan: Plan) -> Plan:
    """Run ``plan`` with ``collector`` recording its run.

    Right after the run opens the collector is kicked off (history cleared, recording
    started); right before the run closes it is completed and every channel's stream is
    collected into the run (events, or StreamResource documents with ``export=True``).
    """

    def mutate(msg: Msg) -> tuple[Plan | None, Plan | None]:
        if msg.command == "open_run":

            def after() -> Plan:
                yield from bps.kickoff(collector, wait=True)

            return None, after()
        if msg.command == "close_run":

            def instead() -> Plan:
                yield from collect_channels(collector)
                return (yield msg)

            return instead(), None
        return None, None

    return (yield from bpp.plan_mutator(plan, mutate))


def create_collector(
    factory_prefix: str,
    name: str,
    channels: list[Any],
    *,
    device_name: str | None = None,
    export: bool = False,
    **config: Any,
) -> Plan:
    """Create a collector on a factory from inside a plan; return its connected device."""

    async def create() -> str:
        factory = AsyncFactory(shared_connection(5.0), factory_prefix)
        made = await factory.create_collector(name, channels, **config)
        return made.prefix

    prefix: list[str] = []

    async def run() -> None:
        prefix.append(await create())

    yield from bps.wait_for([run])
    device = CollectorDevice(prefix[0], export=export, name=device_name or name)
    yield from ensure_connected(device)
    return device
