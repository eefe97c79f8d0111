"""The Archiver Appliance's management read API, under ``/mgmt/bpl`` on the same port.

The appliance's single-port layout: ``getApplianceInfo`` names this service's
``/mgmt/bpl`` and ``/retrieval/bpl`` (with the host the client asked for), so aaclient,
aapy's ``AaRestClient`` and site scripts find the rest from it. Every endpoint is a
read: it is checked against ``access.read`` for its peer, as retrieval is; the answers
are what :mod:`._pvinfo` makes of the collectors' ``Channels`` (see there).
"""

from __future__ import annotations

import importlib.metadata
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from epics_collector.retrieval._app import Retrieval, bounded_body
from epics_collector.retrieval._errors import RequestError
from epics_collector.retrieval._matching import limit, matching, names_from_body, split_names
from epics_collector.retrieval._pvinfo import PvInfo, disconnected, never_connected, paused

#: A Host header this service repeats in its URLs: a name or address, and a port
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?")
COMPONENTS = ("mgmt", "retrieval", "engine", "etl")


def version() -> str:
    """This service's version, as the appliance's ``version.txt`` gives its own."""
    try:
        return f"EPICS Collector {importlib.metadata.version('epics-collector')}"
    except importlib.metadata.PackageNotFoundError:  # (run from a source tree)
        return "EPICS Collector (unknown version)"


def _base(request: Request) -> str:
    """``http://HOST:PORT`` as the client asked for it (the connection's own if unusable)."""
    host = request.headers.get("host", "")
    if not _HOST.fullmatch(host):
        server = request.scope.get("server") or ("127.0.0.1", 17668)
        host = f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def add_mgmt(app: FastAPI, retrieval: Retrieval, identity: str) -> None:
    """Serve the management read API of ``retrieval``'s archive on ``app``."""

    def info(pv: str | None) -> PvInfo:
        if not pv:
            raise RequestError("give the PV: ?pv=NAME", 400)
        found = PvInfo(retrieval.archive, pv)
        if not found.known:
            raise RequestError(f"no collector followed here has recorded {pv!r}", 404)
        return found

    async def posted(request: Request) -> list[str]:
        body = await bounded_body(request)
        return names_from_body(request.headers.get("content-type", ""), body)

    @app.get("/mgmt/bpl/getApplianceInfo")
    async def get_appliance_info(request: Request) -> Response:
        retrieval.check_peer(request)
        asked = request.query_params.get("id")
        if asked and asked != identity:
            raise RequestError(f"no appliance {asked!r} here (this one is {identity!r})", 404)
        base = _base(request)
        return JSONResponse(
            {
                "identity": identity,
                "mgmtURL": f"{base}/mgmt/bpl",
                "engineURL": f"{base}/engine/bpl",
                "etlURL": f"{base}/etl/bpl",
                "retrievalURL": f"{base}/retrieval/bpl",
                "dataRetrievalURL": f"{base}/retrieval",
                "version": version(),
            }
        )

    @app.get("/mgmt/bpl/getVersions")
    async def get_versions(request: Request) -> Response:
        retrieval.check_peer(request)
        mine = version()
        return JSONResponse({f"{name}_version": mine for name in COMPONENTS})

    @app.get("/{component}/bpl/getVersion")
    async def get_version(component: str, request: Request) -> Response:
        retrieval.check_peer(request)
        if component not in COMPONENTS:
            raise RequestError(f"no {component!r} here: {', '.join(COMPONENTS)}", 404)
        return JSONResponse({"version": version()})

    @app.get("/mgmt/bpl/getAllPVs")
    async def get_all_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        params = request.query_params
        asked = split_names(params.get("pv", ""))
        most = limit(params.get("limit"), 500)
        return JSONResponse(matching(retrieval.archive.names(), asked, params.get("regex"), most))

    @app.get("/mgmt/bpl/getPVTypeInfo")
    async def get_pv_type_info(request: Request) -> Response:
        retrieval.check_peer(request)
        return JSONResponse(info(request.query_params.get("pv")).type_info())

    @app.get("/mgmt/bpl/getPVDetails")
    async def get_pv_details(request: Request) -> Response:
        retrieval.check_peer(request)
        return JSONResponse(info(request.query_params.get("pv")).details())

    def statuses(asked: list[str], regex: str | None, most: int) -> Response:
        archive = retrieval.archive
        names = matching(archive.names(), asked, regex, most, unknown=True)
        return JSONResponse([PvInfo(archive, name).status() for name in names])

    @app.get("/mgmt/bpl/getPVStatus")
    async def get_pv_status(request: Request) -> Response:
        retrieval.check_peer(request)
        params = request.query_params
        asked = split_names(params.get("pv", ""))
        return statuses(asked, params.get("regex"), limit(params.get("limit"), -1))

    @app.post("/mgmt/bpl/getPVStatus")
    async def post_pv_status(request: Request) -> Response:
        retrieval.check_peer(request)
        asked = await posted(request)
        return statuses(asked, None, limit(request.query_params.get("limit"), -1))

    @app.post("/mgmt/bpl/archivedPVs")
    async def archived_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        archive = retrieval.archive
        return JSONResponse([n for n in await posted(request) if PvInfo(archive, n).archived])

    @app.post("/mgmt/bpl/unarchivedPVs")
    async def unarchived_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        archive = retrieval.archive
        asked = dict.fromkeys(await posted(request))
        return JSONResponse([n for n in asked if not PvInfo(archive, n).archived])

    @app.get("/mgmt/bpl/getNeverConnectedPVs")
    async def get_never_connected_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        return JSONResponse(never_connected(retrieval.archive))

    @app.get("/mgmt/bpl/getCurrentlyDisconnectedPVs")
    async def get_currently_disconnected_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        return JSONResponse(disconnected(retrieval.archive))

    @app.get("/mgmt/bpl/getPausedPVsReport")
    async def get_paused_pvs_report(request: Request) -> Response:
        retrieval.check_peer(request)
        return JSONResponse(paused(retrieval.archive))

    # last: it answers every name the routes before it do not
    @app.api_route("/mgmt/bpl/{call}", methods=["GET", "POST"], include_in_schema=False)
    async def not_served(call: str, request: Request) -> Response:
        retrieval.check_peer(request)
        raise RequestError(f"no management call {call!r} here (or not by {request.method})", 404)
