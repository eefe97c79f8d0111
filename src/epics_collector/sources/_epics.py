"""The :class:`~epics_collector.core.Sources` devices get: picks PVA or CA by URL scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from epics_collector.core import SourceListener, Subscription, split_url
from epics_collector.pva import Network
from epics_collector.sources._pva import PvaSources

if TYPE_CHECKING:
    from epics_collector.sources._ca import CaSources


class EpicsSources:
    """``pva://NAME`` or a bare name over PVAccess, ``ca://NAME`` over Channel Access."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._pva: PvaSources | None = None
        self._ca: CaSources | None = None

    def subscribe(self, url: str, listener: SourceListener, *, queue_size: int) -> Subscription:
        """Open a monitor; CA subscriptions must be opened on the device's event loop."""
        scheme, name = split_url(url)
        if scheme == "ca":
            return self._ca_sources().subscribe(name, listener, queue_size=queue_size)
        return self._pva_sources().subscribe(name, listener, queue_size=queue_size)

    async def put(self, url: str, value: Any) -> None:
        """Write to a PV over PVA or CA."""
        scheme, name = split_url(url)
        if scheme == "ca":
            await self._ca_sources().put(name, value)
        else:
            await self._pva_sources().put(name, value)

    def _ca_sources(self) -> CaSources:
        if self._ca is None:
            from epics_collector.sources._ca import CaSources

            self._ca = CaSources(self.network)
        return self._ca

    def _pva_sources(self) -> PvaSources:
        if self._pva is None:
            self._pva = PvaSources(self.network)
        return self._pva

    def detach(self) -> None:
        """Release what the running event loop holds (CA channels)."""
        if self._ca is not None:
            self._ca.detach()

    def close(self) -> None:
        """Close every connection."""
        if self._pva is not None:
            self._pva.close()
            self._pva = None
