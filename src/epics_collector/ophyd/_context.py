"""One client context per process for the ophyd devices' own requests.

A RunEngine calls ``collect`` and ``describe`` many times a run; a new p4p context for
each (a new UDP socket, searches from scratch) costs far more than the request. The
devices share one context per event loop (the RunEngine's), made on first use and kept
for the process's life; each caller takes a view of it with its own timeout.
"""

from __future__ import annotations

import asyncio
import weakref

from epics_collector.client import Connection

_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Connection] = (
    weakref.WeakKeyDictionary()
)


def shared_connection(timeout: float) -> Connection:
    """The running loop's shared connection, as seen with ``timeout`` (never close it)."""
    loop = asyncio.get_running_loop()
    connection = _shared.get(loop)
    if connection is None:
        connection = _shared[loop] = Connection()
    return connection.with_timeout(timeout)
