"""Who may act through the dashboard: its own pages, for clients the device's policy allows.

A dashboard started with ``--allow-control`` writes to devices as its own host, which a
device's policy allows. So the dashboard checks, for every control request:

- **the page's token**: each page carries a random token (a ``<meta>`` tag) that its
  control requests send back in ``X-Dashboard-Token``; another site's page cannot read
  it, so a cross-site form or script is refused;
- **the origin**: a request or websocket whose ``Origin`` is not the dashboard's own
  (``http://`` + its ``Host``) is refused;
- **the device's policy for the HTTP client**: the device's ``access.control`` (from its
  ``Config`` PV) must allow the client's address, as it would if the client wrote the PV
  itself.

Every refusal is a 403 with the reason, logged with the client's address and counted
(:attr:`Guard.refused`).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException

from epics_collector.client import Connection
from epics_collector.core import AccessPolicy, DevicePv, Operation, refusal

TOKEN_HEADER = "x-dashboard-token"
log = logging.getLogger(__name__)


class Guard:
    """The checks of one dashboard process (its token is new at every start)."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(24)
        self.refused = 0

    def _refuse(self, client: str, why: str) -> HTTPException:
        self.refused += 1
        log.warning("refused a request of %s: %s", client or "(unknown client)", why)
        return HTTPException(403, why)

    def same_origin(self, headers: Mapping[str, str], client: str) -> None:
        """Refuse a request or websocket sent by a page of another origin."""
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{headers.get('host', '')}":
            raise self._refuse(client, f"cross-site request from {origin[:100]!r} refused")

    def page_token(self, headers: Mapping[str, str], client: str) -> None:
        """Refuse a control request without the token of a page this dashboard served."""
        given = headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise self._refuse(
                client, "no valid page token: control requests come from the dashboard's page"
            )

    async def device_allows(self, connection: Connection, prefix: str, client: str) -> None:
        """Refuse unless the device's own policy lets ``client`` control it."""
        try:
            config: dict[str, Any] = json.loads(
                str(await connection.get(prefix + DevicePv.CONFIG, timeout=5.0))
            )
        except Exception as error:  # no policy to check against: refuse, say why
            raise self._refuse(client, f"{prefix} its policy cannot be read ({error})") from None
        policy = AccessPolicy.model_validate(config.get("access") or {})
        if not policy.allows(Operation.CONTROL, client):
            denied = refusal(Operation.CONTROL, f"dashboard request to {prefix}", client, "")
            raise self._refuse(client, str(denied))
