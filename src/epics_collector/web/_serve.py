"""Serve the dashboard with uvicorn until Ctrl-C or SIGTERM, and exit quietly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

from epics_collector.process import STOP_SIGNALS


class _Server(uvicorn.Server):
    """uvicorn's server that calls ``on_ready(port)`` as soon as it accepts connections.

    Its signal capture is left out: it re-raises the signal at the end.
    """

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # exits (SystemExit) if it cannot bind
        if self.started:
            self._on_ready(self.servers[0].sockets[0].getsockname()[1])


class ServeError(RuntimeError):
    """The dashboard could not start (the port is taken, say)."""


def serve(app: Any, host: str, port: int, on_ready: Callable[[int], None]) -> None:
    """Serve ``app`` on ``host:port``; ``on_ready(port)`` once it accepts (port 0: any).

    SIGINT or SIGTERM stops it gracefully (a second SIGINT at once); it returns normally.
    """
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"), on_ready)

    def stop(signum: int, frame: FrameType | None) -> None:
        if server.should_exit and signum == signal.SIGINT:
            server.force_exit = True
        server.should_exit = True  # uvicorn polls it every 0.1 s

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)

    try:
        asyncio.run(server.serve())
    except SystemExit as error:  # uvicorn exits when it cannot bind
        raise ServeError(f"cannot serve on {host}:{port} (see above)") from error
