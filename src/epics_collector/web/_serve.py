"""Serve the dashboard with uvicorn until Ctrl-C or SIGTERM, and exit quietly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

from epics_collector.process import STOP_SIGNALS


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture, which re-raises the signal at the end."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServeError(RuntimeError):
    """The dashboard could not start (the port is taken, say)."""


def serve(app: Any, host: str, port: int, on_ready: Callable[[int], None]) -> None:
    """Serve ``app`` on ``host:port``; ``on_ready(port)`` once it accepts (port 0: any).

    SIGINT or SIGTERM stops it gracefully (a second SIGINT at once); it returns normally.
    """
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True  # uvicorn polls it every 0.1 s

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)  # uvicorn has no started event to await
        if server.started:
            on_ready(server.servers[0].sockets[0].getsockname()[1])
        await task

    try:
        asyncio.run(run())
    except SystemExit as error:  # uvicorn exits when it cannot bind
        raise ServeError(f"cannot serve on {host}:{port} (see above)") from error
