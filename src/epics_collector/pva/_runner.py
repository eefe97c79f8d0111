"""Run a served device in the foreground until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from p4p.client.thread import Context, TimeoutError

from epics_collector.core import Device
from epics_collector.process import STOP_SIGNALS
from epics_collector.pva._network import Network
from epics_collector.pva._server import DeviceServer


async def serve_until_signal(
    device: Device[Any],
    prefix: str,
    network: Network,
    on_ready: Callable[[DeviceServer], None] | None = None,
) -> None:
    """Serve ``device`` until the process gets SIGTERM or SIGINT, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with DeviceServer(device, prefix, network) as server:
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def pv_answers(name: str, network: Network, timeout: float = 10.0) -> bool:
    """Whether a get of ``name`` succeeds within ``timeout`` seconds (retrying)."""
    deadline = time.monotonic() + timeout
    with Context("pva", conf=network.client_conf(), useenv=network.useenv) as ctx:
        while True:
            try:
                ctx.get(name, timeout=min(1.0, max(0.1, deadline - time.monotonic())))
                return True
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return False
