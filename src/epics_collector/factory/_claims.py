"""One owner per device prefix across factories: a prefix is claimed on the network.

A factory that creates a device under ``P`` serves ``P`` + :data:`CLAIM` (a string
naming the factory) for as long as the device exists. A Create claims in two rounds
of a search that hears *every* server of a name (:data:`ServerFinder`):

1. If any server answers ``P:Claim`` or one of the device's own names, the prefix is
   taken: the Create is refused.
2. Otherwise the factory serves ``P:Claim`` (and a name only it serves, to know its
   own answer), waits, and searches again. If another server answers ``P:Claim`` too,
   two Creates raced: the server with the lower GUID keeps the prefix, the other one
   withdraws and refuses its Create.

Each round sends its search three times over its window. Two claimants whose first
rounds missed each other started serving within a third of a window of each other, so
each one's later sends of round 2 reach the other's claim: both see each other, and
both decide the same way. A claimant that missed nobody in round 1 is alone or racing; one that
arrives later is refused in round 1.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from epics_collector.core import AttrR, Device, String

#: Suffix of the claim PV a factory serves under each prefix it owns.
CLAIM = "Claim"
#: Who serves each name: ``finder(names, wait)`` -> {name: server GUIDs}. Blocking.
ServerFinder = Callable[[list[str], float], dict[str, set[str]]]
log = logging.getLogger(__name__)


class ClaimRefusedError(Exception):
    """The prefix is someone else's; the text says whose and why."""


class PrefixClaims:
    """The prefixes a factory claims, served as ``PREFIX`` + :data:`CLAIM` by ``owner``."""

    def __init__(self, owner: Device[Any], finder: ServerFinder | None, wait: float) -> None:
        self.owner, self.finder, self.wait = owner, finder, wait
        self._held: set[str] = set()

    def _claim_pv(self, prefix: str) -> AttrR[String]:
        attr = AttrR(
            String(),
            name=prefix + CLAIM,
            description="The factory that owns this prefix",
        )
        attr.set(f"factory {self.owner.prefix} on {getattr(self.owner, 'host', '?')}")
        return attr

    def hold(self, prefix: str) -> None:
        """Serve the claim of ``prefix`` without a check (a device this factory runs)."""
        if prefix not in self._held:
            self.owner.outside.serve(prefix + CLAIM, self._claim_pv(prefix))
            self._held.add(prefix)

    def release(self, prefix: str) -> None:
        """Stop claiming ``prefix`` (its device was destroyed)."""
        if prefix in self._held:
            self._held.discard(prefix)
            self.owner.outside.withdraw(prefix + CLAIM)

    async def _servers(self, names: list[str]) -> dict[str, set[str]]:
        assert self.finder is not None
        return await asyncio.to_thread(self.finder, names, self.wait)

    async def claim(self, prefix: str, names: Iterable[str]) -> None:
        """Claim ``prefix`` for a new device whose PVs are ``names``; or refuse.

        Without a finder (a factory not on a network), the claim is only held.
        """
        if self.finder is None:
            self.hold(prefix)
            return
        claim_name = prefix + CLAIM
        found = await self._servers([claim_name, *names])
        taken = sorted(name for name, servers in found.items() if servers)
        if taken:
            raise ClaimRefusedError(
                f"{taken[0]} already answers on the network: {prefix} is taken"
                + (" (claimed by another factory)" if taken[0] == claim_name else "")
            )
        self.hold(prefix)
        marker = f"{prefix}{CLAIM}:{secrets.token_hex(8)}"
        self.owner.outside.serve(marker, self._claim_pv(prefix))
        try:
            await asyncio.sleep(self.wait / 3)
            found = await self._servers([claim_name, marker])
        except BaseException:
            self.release(prefix)
            raise
        finally:
            self.owner.outside.withdraw(marker)
        mine = found[marker]
        others = found[claim_name] - mine
        if not mine:
            log.warning("claim of %s: this factory's own answer was not heard", prefix)
        if others and min(others) < min(mine or {"~"}):
            self.release(prefix)
            raise ClaimRefusedError(
                f"another factory claimed {prefix} at the same time and keeps it "
                "(the server with the lower GUID does): try another prefix"
            )
        if others:
            log.info("claim of %s: won a race against %d other claimant(s)", prefix, len(others))
