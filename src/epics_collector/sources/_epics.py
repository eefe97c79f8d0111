"""The :class:`~epics_collector.core.Sources` devices get: picks PVA or CA by URL scheme."""

from __future__ import annotations

from epics_collector.core import SourceListener, Subscription, split_url
from epics_collector.pva import Network
from epics_collector.sources._pva import PvaSources


class EpicsSources:
    """``pva://NAME`` or a bare name over PVAccess, ``ca://NAME`` over Channel Access."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._pva: PvaSources | None = None
        self._ca = None

    def subscribe(self, url: str, listener: SourceListener, *, queue_size: int) -> Subscription:
        """Open a monitor; CA subscriptions must be opened on the device's event loop."""
        scheme, name = split_url(url)
        if scheme == "ca":
            if self._ca is None:
                from epics_collector.sources._ca import CaSources

                self._ca = CaSources(self.network)
            return self._ca.subscribe(name, listener, queue_size=queue_size)
        if self._pva is None:
            self._pva = PvaSources(self.network)
        return self._pva.subscribe(name, listener, queue_size=queue_size)

    def close(self) -> None:
        """Close every connection."""
        if self._pva is not None:
            self._pva.close()
            self._pva = None
