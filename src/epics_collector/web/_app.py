"""The dashboard's web server: one page, a websocket of updates, and control actions.

Read-only unless started with ``allow_control``; then Start/Stop/Export of collectors
and parameter changes of processing devices go through the same client as the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Awaitable
from importlib import resources
from pathlib import PurePath
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from epics_collector.client import AsyncCollector, AsyncProcessor, Binned, ClientError, History
from epics_collector.pva import Network
from epics_collector.web._guard import Guard
from epics_collector.web._hub import Hub, PageView
from epics_collector.web._trace import finite_or_none

PUSH_PERIOD = 0.1  # seconds between updates sent to a page (10 Hz)


class Param(BaseModel):
    """A parameter change from the page."""

    name: str
    value: str


#: The page's files: name -> media type (nothing else is served from static/).
STATIC = {
    "app.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
    "uplot/uPlot.iife.min.js": "text/javascript",
    "uplot/uPlot.min.css": "text/css",
    "uplot/LICENSE": "text/plain",
}


def _static(name: str) -> str:
    return resources.files("epics_collector.web").joinpath("static", *name.split("/")).read_text()


def to_json(message: Any) -> str:
    """Strict JSON: a NaN or infinity that slipped through is an error here, not in a page."""
    return json.dumps(message, allow_nan=False)


def _json_numbers(values: Any) -> list[float | None]:
    """Floats for JSON; NaN and infinities (no JSON word for them) as null."""
    if values is None:
        return []
    return [finite_or_none(v) for v in np.asarray(values, float).tolist()]


async def _binned(
    view: Awaitable[History | Binned], whole: Awaitable[History | Binned]
) -> dict[str, Any]:
    """A history browser's answer: minmax bins and the rows recorded in all."""
    try:
        shown, counted = await view, await whole
    except ClientError as error:
        raise HTTPException(409, str(error)) from None
    assert isinstance(shown, Binned) and isinstance(counted, Binned)
    return {
        "time": shown.time.tolist(),
        "value": _json_numbers(shown.value),
        "min": _json_numbers(shown.min),
        "max": _json_numbers(shown.max),
        "count": [] if shown.count is None else shown.count.tolist(),
        "severity": [] if shown.severity is None else shown.severity.tolist(),
        "recorded": int(counted.value.sum()) if len(counted.value) else 0,
    }


def _unique_name(device: str) -> str:
    """``<device>-<UTC time to the microsecond>.nxs``: a new file at every click."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S-%f")
    return f"{device}-{stamp}.nxs"


def make_app(
    factory: str, *, allow_control: bool = False, network: Network | None = None
) -> FastAPI:
    """The dashboard of the factory under prefix ``factory``."""
    hub = Hub(factory, network)
    guard = Guard()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start()
        yield
        await hub.stop()

    app = FastAPI(title="EPICS Collector dashboard", lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        token = f'<meta name="dashboard-token" content="{guard.token}">'
        return _static("index.html").replace("<head>", "<head>\n" + token, 1)

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(_static("favicon.svg"), media_type=STATIC["favicon.svg"])

    @app.get("/static/{name:path}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no file {name!r}")
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/api/history/{name}/{alias}")
    async def history(
        name: str,
        alias: str,
        start: float | None = None,
        end: float | None = None,
        points: int = 800,
    ) -> dict[str, Any]:
        """A channel's recording between start and end, binned on the device (minmax)."""
        collector = AsyncCollector(hub.connection, _prefix(name))
        bins = min(max(points, 1), 4000)
        return await _binned(
            collector.history(alias, start=start, end=end, points=bins, operator="minmax"),
            collector.history(alias, points=1, operator="count"),
        )

    @app.get("/api/recordings/{recording}/{alias}")
    async def retired_history(
        recording: str,
        alias: str,
        start: float | None = None,
        end: float | None = None,
        points: int = 800,
    ) -> dict[str, Any]:
        """A retired recording's channel between start and end, binned by its factory."""
        if all(r["id"] != recording for r in hub.retired):
            raise HTTPException(404, f"no retired recording {recording[:80]!r}")
        bins = min(max(points, 1), 4000)
        return await _binned(
            hub.factory.history(
                recording, alias, start=start, end=end, points=bins, operator="minmax"
            ),
            hub.factory.history(recording, alias, points=1, operator="count"),
        )

    @app.get("/api/state")
    async def state() -> Response:
        message = {**hub.snapshot(PageView()), **_mode()}
        return Response(to_json(message), media_type="application/json")

    def _mode() -> dict[str, Any]:
        """Whether control is on, and how many requests the dashboard refused."""
        return {"allow_control": allow_control, "refused": guard.refused}

    def _prefix(name: str) -> str:
        for info in hub.devices:
            if info.name == name:
                return info.prefix
        raise HTTPException(404, f"no device named {name!r}")

    async def _check_control(request: Request, prefix: str) -> None:
        """Refuse unless control is on, the page is ours, and the device allows the client.

        The device's policy is checked for the HTTP client's address, not the
        dashboard's own (see :class:`Guard`).
        """
        if not allow_control:
            raise HTTPException(403, "read-only dashboard: start it with --allow-control")
        client = request.client.host if request.client else ""
        guard.same_origin(request.headers, client)
        guard.page_token(request.headers, client)
        await guard.device_allows(hub.connection, prefix, client)

    # (before the {action} route, which would match "param" too)
    @app.post("/api/devices/{name}/param")
    async def set_param(name: str, param: Param, request: Request) -> dict[str, str]:
        prefix = _prefix(name)
        await _check_control(request, prefix)
        processor = AsyncProcessor(hub.connection, prefix)
        try:
            await processor.set_param(param.name, param.value)
        except ClientError as error:
            raise HTTPException(409, str(error)) from None
        return {"result": "ok"}

    @app.post("/api/devices/{name}/{action}")
    async def act(name: str, action: str, request: Request, file: str = "") -> dict[str, str]:
        prefix = _prefix(name)
        await _check_control(request, prefix)
        collector = AsyncCollector(hub.connection, prefix)
        try:
            if action == "start":
                await collector.start()
            elif action == "stop":
                await collector.stop()
            elif action == "export":  # the file's name in the device's data directory
                written = await collector.export(file or _unique_name(name))
                return {"result": f"{PurePath(written).name} written"}
            else:
                raise HTTPException(404, f"no action {action!r}")
            return {"result": await collector.state()}
        except ClientError as error:
            raise HTTPException(409, str(error)) from None

    @app.websocket("/ws")
    async def updates(socket: WebSocket) -> None:
        try:
            guard.same_origin(socket.headers, socket.client.host if socket.client else "")
        except HTTPException:
            await socket.close(code=1008)  # policy violation: another site's page
            return
        await socket.accept()
        page = PageView()
        try:
            while True:
                message = {**hub.snapshot(page), **_mode()}
                await socket.send_text(to_json(message))
                await asyncio.sleep(PUSH_PERIOD)
        except (WebSocketDisconnect, RuntimeError):
            return

    return app
