"""``epics-collector retrieval``: the service, its configuration and its lifetime.

It serves the retrieval API under ``/retrieval`` and the management read API under
``/mgmt`` on one port, as an Archiver Appliance does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from epics_collector.client import Connection
from epics_collector.core import AccessPolicy
from epics_collector.pva import Network
from epics_collector.retrieval._app import Retrieval, create_app
from epics_collector.retrieval._archive import PAGE_ROWS, Archive
from epics_collector.retrieval._mgmt import add_mgmt
from epics_collector.retrieval._mgmt_writes import ArchivingConfig, add_mgmt_writes
from epics_collector.storage import MAX_POINTS

DEFAULT_PORT = 17668  # the Archiver Appliance's retrieval port


class RetrievalConfig(BaseModel):
    """What the service reads and whom it answers (``--config FILE``, or the options)."""

    model_config = ConfigDict(extra="forbid")
    factories: list[str] = Field(default_factory=list, description="factory prefixes to follow")
    collectors: list[str] = Field(default_factory=list, description="single collector prefixes")
    access: AccessPolicy = Field(
        default_factory=AccessPolicy, description="access.read: who may read (HTTP peers)"
    )
    max_samples: int = Field(
        default=10_000_000,
        ge=1,
        le=1_000_000_000,
        description="samples one request may hold; beyond it the answer says how many there are",
    )
    refresh: float = Field(
        default=5.0, ge=0.5, le=3600, description="seconds between looks for new collectors"
    )
    timeout: float = Field(
        default=10.0, ge=0.1, le=600, description="seconds a device has to answer"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies whose X-Forwarded-For is believed (default "
        "none: access.read is checked against the connecting address)",
    )
    identity: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="this service's name in the management API (getApplianceInfo's identity; "
        "default the host name)",
    )
    archiving: ArchivingConfig | None = Field(
        default=None,
        description="where archivePV puts new PVs (the factories' archiving collector); "
        "without it archivePV answers 501",
    )
    page_rows: int = Field(
        default=PAGE_ROWS,
        ge=10,
        le=MAX_POINTS,
        description="rows read from a collector per Query page (each page goes on by position)",
    )
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness of every thread of the service (at least; Linux): on a host "
        "that also records, answers take the CPU recording leaves (0: keep the priority)",
    )


def make_app(config: RetrievalConfig, network: Network) -> FastAPI:
    """The retrieval service's application: it follows the collectors while it runs."""
    retrieval = Retrieval(config.access, config.max_samples)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection = Connection(network, timeout=config.timeout)
        archive = Archive(
            connection, config.factories, config.collectors, config.timeout, config.page_rows
        )
        await archive.refresh()
        retrieval.archive = archive
        follower = asyncio.create_task(archive.follow(config.refresh), name="follow collectors")
        try:
            yield
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            connection.close()

    app = create_app(retrieval, lifespan)
    add_mgmt_writes(app, retrieval, config.archiving)
    add_mgmt(app, retrieval, config.identity)  # (last: its catch-all answers the rest)
    return app
