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
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class _HeaderDeadline(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for each request's headers.

    A client that opens a connection and trickles its headers (or sends none) holds a
    file descriptor for as long as it likes: uvicorn times out idle keep-alive
    connections, not requests that never finish arriving. Here a request's headers must
    be complete within :data:`HEADER_TIMEOUT` seconds of the connection (or of the end
    of the previous response), or the connection is closed.
    """

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:  # a new request comes
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class ServeError(RuntimeError):
    """The dashboard could not start (the port is taken, say)."""


#: Bytes of one websocket message from a page (the page sends only small commands).
WS_MAX_BYTES = 4096
#: Connections served at once; beyond it a new one gets 503 at once (file descriptors
#: stay bounded whatever a client holds open).
MAX_CONNECTIONS = 512
#: Seconds a client has to send a request's headers (a trickling client is cut).
HEADER_TIMEOUT = 10.0


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
    idle keep-alive connections, the time a request's headers may take and connections
    at once are bounded.

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
        http=_HeaderDeadline,
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
