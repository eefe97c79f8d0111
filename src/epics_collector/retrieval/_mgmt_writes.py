"""The Archiver Appliance's management write calls, mapped onto factories and collectors.

``archivePV`` adds a PV to the *archiving collector* of a factory (``archiving`` in the
service's config names it): the factory creates it on first use, and each new PV goes
to the factory a ``place`` rule names, else to the one whose archiving collector has
the fewest channels. ``pauseArchivingPV`` removes the PV's channels as a pause (their
rows stay; ``resumeArchivingPV`` adds them back); ``deletePV`` removes a paused PV for
good (the appliance's rule: pause first), and with ``deleteData=true`` purges its rows.

Each call needs the matching right of the service's ``access`` policy for its HTTP peer
(``factory`` for archive and delete, ``control`` for pause and resume, ``delete`` for
``deleteData``); the factories and collectors check their own policies against this
service. Answers are the appliance's: one object per PV, ``status`` (``Archive request
submitted``, ``ok``) or ``validation`` (why not).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from epics_collector.client import ClientError
from epics_collector.collector import CollectorPv, default_alias
from epics_collector.core import Operation
from epics_collector.factory import FactoryPv, check_prefix
from epics_collector.retrieval._app import Retrieval, bounded_body
from epics_collector.retrieval._archive import Recording
from epics_collector.retrieval._errors import RequestError
from epics_collector.retrieval._matching import MAX_NAMES, names_from_body, split_names
from epics_collector.retrieval._pvinfo import PvInfo

SUBMITTED = "Archive request submitted"


class Placement(BaseModel):
    """New PVs whose name matches ``match`` (a glob) go to ``factory``."""

    model_config = ConfigDict(extra="forbid")
    match: str = Field(min_length=1, max_length=200, description="a PV name glob")
    factory: str = Field(description="a factory prefix (one of archiving.factories)")


class ArchivingConfig(BaseModel):
    """Where ``archivePV`` puts new PVs (the service's ``archiving`` section)."""

    model_config = ConfigDict(extra="forbid")
    collector: str = Field(
        default="archive",
        pattern=r"^[A-Za-z0-9_-]{1,40}$",
        description="the archiving collector's name on each factory (made on first use)",
    )
    factories: list[str] = Field(
        default_factory=list, description="factory prefixes new PVs go to (default: followed)"
    )
    place: list[Placement] = Field(
        default_factory=list, description="PV globs to factories, first match wins"
    )
    settings: dict[str, Any] = Field(
        default_factory=lambda: {"persist": True, "autostart": True},
        description="the archiving collector's config besides its channels",
    )

    @field_validator("factories")
    @classmethod
    def _prefixes(cls, prefixes: list[str]) -> list[str]:
        return [check_prefix(p) for p in prefixes]


class Archiver:
    """Carries out the write calls for the PVs of ``retrieval``'s archive."""

    def __init__(self, retrieval: Retrieval, config: ArchivingConfig | None) -> None:
        self.retrieval, self.config = retrieval, config

    @property
    def _call(self) -> Callable[[str, dict[str, str]], Awaitable[Any]]:
        return self.retrieval.archive.connection.call

    def _factories(self) -> list[str]:
        assert self.config is not None
        return self.config.factories or list(self.retrieval.archive.factories)

    def _factory_for(self, pv: str) -> str:
        """The factory a new PV goes to: a place rule's, else the least loaded."""
        assert self.config is not None
        factories = self._factories()
        for rule in self.config.place:
            if fnmatch.fnmatchcase(pv, rule.match):
                return rule.factory
        if not factories:
            raise RequestError("archiving names no factory and the service follows none", 501)
        load = dict.fromkeys(factories, 0)
        for found in self.retrieval.archive.recordings.values():
            for recording in found:
                for factory in load:
                    if recording.collector == factory + self.config.collector + ":":
                        load[factory] += 0 if recording.removed else 1
        return min(factories, key=lambda f: load[f])

    async def archive(self, requests: list[dict[str, str]]) -> list[dict[str, str]]:
        """``archivePV`` of each request (pv, samplingmethod, samplingperiod)."""
        if self.config is None:
            raise RequestError(
                "archivePV needs the service's archiving section (the factories and the "
                "collector new PVs go to); create a collector on a factory instead",
                501,
            )
        answers = []
        made: dict[str, bool] = {}  # factory -> its archiving collector exists
        for request in requests:
            pv = request["pv"]
            if PvInfo(self.retrieval.archive, pv).archived:
                answers.append({"pvName": pv, "status": "Already archived"})
                continue
            try:
                factory = self._factory_for(pv)
                await self._add(factory, _channel(request), made)
            except (ClientError, ValueError) as error:
                answers.append({"pvName": pv, "validation": str(error)})
                continue
            answers.append({"pvName": pv, "status": SUBMITTED})
        await self.retrieval.archive.refresh()
        return answers

    async def _add(self, factory: str, channel: dict[str, Any], made: dict[str, bool]) -> None:
        assert self.config is not None
        name = self.config.collector
        if factory not in made:
            devices = await self.retrieval.archive.connection.get(factory + FactoryPv.DEVICES)
            made[factory] = name in [str(n) for n in devices["name"]]
        if made[factory]:
            await self._call(
                factory + name + ":" + CollectorPv.ADD, {"channel": json.dumps(channel)}
            )
            return
        config = {**self.config.settings, "channels": [channel]}
        arguments = {"type": "collector", "name": name, "config": json.dumps(config)}
        await self._call(factory + FactoryPv.CREATE, arguments)
        made[factory] = True

    async def pause(self, names: list[str], pause: bool) -> list[dict[str, str]]:
        """``pauseArchivingPV`` (or resume) of each PV: its channels removed as a pause."""
        answers = []
        for pv in names:
            info = PvInfo(self.retrieval.archive, pv)
            todo = info.live if pause else info.held
            if not info.archived:
                answers.append({"pvName": pv, "validation": f"PV {pv} is not archived"})
            elif not todo:
                state = "already paused" if pause else "not paused"
                answers.append({"pvName": pv, "validation": f"PV {pv} is {state}"})
            else:
                answers.append(await self._each(pv, todo, self._pause if pause else self._resume))
        await self.retrieval.archive.refresh()
        return answers

    async def _pause(self, recording: Recording) -> None:
        prefix = recording.collector + CollectorPv.REMOVE
        await self._call(prefix, {"alias": recording.alias, "pause": "true"})

    async def _resume(self, recording: Recording) -> None:
        channel = {"pv": recording.source, "alias": recording.alias}
        await self._call(recording.collector + CollectorPv.ADD, {"channel": json.dumps(channel)})

    async def delete(self, names: list[str], purge: bool) -> list[dict[str, str]]:
        """``deletePV`` of each paused PV (its data purged too with ``purge``)."""
        answers = []
        for pv in names:
            info = PvInfo(self.retrieval.archive, pv)
            if not info.archived:
                answers.append({"pvName": pv, "validation": f"PV {pv} is not archived"})
            elif info.live:
                answers.append(
                    {
                        "pvName": pv,
                        "validation": f"We will not stop archiving PV {pv} if it is not "
                        "paused. Please pause recording first.",
                    }
                )
            else:
                answers.append(await self._each(pv, info.held, self._deleter(purge)))
        await self.retrieval.archive.refresh()
        return answers

    def _deleter(self, purge: bool) -> Callable[[Recording], Awaitable[None]]:
        async def delete(recording: Recording) -> None:
            await self._call(recording.collector + CollectorPv.REMOVE, {"alias": recording.alias})
            if purge:
                await self._call(
                    recording.collector + CollectorPv.PURGE, {"alias": recording.alias}
                )

        return delete

    @staticmethod
    async def _each(
        pv: str, recordings: list[Recording], act: Callable[[Recording], Awaitable[None]]
    ) -> dict[str, str]:
        try:
            for recording in recordings:
                await act(recording)
        except ClientError as error:
            return {"pvName": pv, "validation": str(error)}
        return {"pvName": pv, "status": "ok"}


def _channel(request: dict[str, str]) -> dict[str, Any]:
    """A channel for a PV as archivePV asks it (SCAN: a periodic compress)."""
    pv = request["pv"]
    if request.get("policy"):
        raise ValueError(
            f"policy {request['policy']!r}: this service has no archiving policies "
            "(archiving.settings applies to every PV); leave it out"
        )
    channel: dict[str, Any] = {"pv": pv, "alias": default_alias(pv)}
    method = (request.get("samplingmethod") or "MONITOR").upper()
    if method == "SCAN":
        try:
            period = float(request.get("samplingperiod") or 1.0)
        except ValueError:
            raise ValueError(f"samplingperiod {request.get('samplingperiod')!r}") from None
        channel["compress"] = {"algorithm": "periodic", "period": period}
    elif method != "MONITOR":
        raise ValueError(f"samplingmethod must be MONITOR or SCAN, got {method!r}")
    return channel


async def _archive_requests(request: Request) -> list[dict[str, str]]:
    """ArchivePV's PVs: ``pv=a,b`` (with the sampling parameters), or a POSTed JSON list."""
    params = request.query_params
    if request.method == "POST":
        body = await bounded_body(request)
        try:
            items = json.loads(body or b"[]")
        except (ValueError, RecursionError):
            raise RequestError("the body must be a JSON list of PVs or of {pv, ...}") from None
        if not isinstance(items, list) or len(items) > MAX_NAMES:
            raise RequestError(f"the body must be a JSON list of at most {MAX_NAMES} PVs")
        found = []
        for item in items:
            entry = {"pv": item} if isinstance(item, str) else item
            if not isinstance(entry, dict) or not isinstance(entry.get("pv"), str):
                raise RequestError('each item must be a PV name or an object with "pv"')
            found.append({k: str(v) for k, v in entry.items()})
        return found
    keys = ("samplingmethod", "samplingperiod", "policy")
    common = {k: str(params[k]) for k in keys if params.get(k)}
    return [{"pv": pv, **common} for pv in split_names(params.get("pv", ""))]


def add_mgmt_writes(app: FastAPI, retrieval: Retrieval, archiving: ArchivingConfig | None) -> None:
    """Serve archivePV, pauseArchivingPV, resumeArchivingPV and deletePV on ``app``."""
    archiver = Archiver(retrieval, archiving)

    def allow(request: Request, operation: Operation) -> None:
        host = request.client.host if request.client else ""
        if not retrieval.access.allows(operation, host):
            raise RequestError(
                f"{host or 'this host'} may not {operation.value} here "
                f"(access.{operation.value} of the service's policy)",
                403,
            )

    async def names(request: Request) -> list[str]:
        if request.method == "POST":
            body = await bounded_body(request)
            asked = names_from_body(request.headers.get("content-type", ""), body)
        else:
            asked = split_names(request.query_params.get("pv", ""))
        if not asked:
            raise RequestError("give the PV: ?pv=NAME (or POST a list of names)")
        archive = retrieval.archive
        found: list[str] = []
        for pattern in asked:  # globs select among the archived PVs
            if "*" in pattern or "?" in pattern:
                found += [n for n in archive.names() if fnmatch.fnmatchcase(n, pattern)]
            else:
                found.append(pattern)
        return found

    @app.api_route("/mgmt/bpl/archivePV", methods=["GET", "POST"])
    async def archive_pv(request: Request) -> Response:
        allow(request, Operation.FACTORY)
        requests = await _archive_requests(request)
        if not requests:
            raise RequestError("give the PV: ?pv=NAME (or POST a JSON list)")
        return JSONResponse(await archiver.archive(requests))

    async def _pause(request: Request, pause: bool) -> Response:
        allow(request, Operation.CONTROL)
        return JSONResponse(await archiver.pause(await names(request), pause))

    @app.api_route("/mgmt/bpl/pauseArchivingPV", methods=["GET", "POST"])
    async def pause_archiving_pv(request: Request) -> Response:
        return await _pause(request, True)

    @app.api_route("/mgmt/bpl/resumeArchivingPV", methods=["GET", "POST"])
    async def resume_archiving_pv(request: Request) -> Response:
        return await _pause(request, False)

    @app.api_route("/mgmt/bpl/deletePV", methods=["GET", "POST"])
    async def delete_pv(request: Request) -> Response:
        allow(request, Operation.FACTORY)
        purge = request.query_params.get("deleteData", "").lower() == "true"
        if purge:
            allow(request, Operation.DELETE)
        return JSONResponse(await archiver.delete(await names(request), purge))
