"""Sleeping until a descriptor is readable: the one wait under the pipes and pidfds."""

from __future__ import annotations

import asyncio
import selectors


def readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable, at most ``timeout`` s (None: no limit); whether it is."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout))


async def readable_async(fd: int, timeout: float | None) -> bool:
    """:func:`readable` on the running event loop (the loop goes on meanwhile)."""
    if readable(fd, 0):
        return True
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        await asyncio.wait_for(ready.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
