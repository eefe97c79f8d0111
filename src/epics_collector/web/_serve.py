"""Serve the dashboard with uvicorn until Ctrl-C or SIGTERM, and exit quietly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator, Sequence
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


#: Bytes of one websocket message from a page (the page sends only small commands).
WS_MAX_BYTES = 4096
#: Connections served at once; beyond it a new one gets 503 at once (file descriptors
#: stay bounded whatever a client holds open).
MAX_CONNECTIONS = 512


def serve(
    app: Any,
    host: str,
    port: int,
    on_ready: Callable[[int], None],
    trusted_proxies: Sequence[str] = (),
) -> None:
    """Serve ``app`` on ``host:port``; ``on_ready(port)`` once it accepts (port 0: any).

    Proxy headers (``X-Forwarded-For``) are believed only from ``trusted_proxies``
    (addresses); none by default, so a client can never claim another address than the
    one it connects from (uvicorn's own default trusts 127.0.0.1). Websocket messages,
    idle keep-alive connections and connections at once are bounded.

    SIGINT or SIGTERM stops it gracefully (a second SIGINT at once); it returns normally.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        server_header=False,
        ws_max_size=WS_MAX_BYTES,
        timeout_keep_alive=5,
        limit_concurrency=MAX_CONNECTIONS,
    )
    server = _Server(config, on_ready)

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
