"""The ophyd devices' requests share one client context per event loop (issue 40)."""

from __future__ import annotations

import asyncio


def test_one_context_per_loop_whatever_the_timeouts() -> None:
    from epics_collector.ophyd._context import shared_connection

    async def two() -> tuple[object, object, float, float]:
        first, second = shared_connection(10.0), shared_connection(2.0)
        return first._ctx, second._ctx, first.timeout, second.timeout  # noqa: SLF001

    a, b, t1, t2 = asyncio.run(two())
    assert a is b and (t1, t2) == (10.0, 2.0)
    c, *_ = asyncio.run(two())  # another loop: its own
    assert c is not a
