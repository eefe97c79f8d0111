"""An in-memory :class:`~epics_collector.core.Sources` for unit tests of devices.

A test posts updates and connection changes to named sources; the device under test
receives them through the listeners it subscribed, on the test's thread, with no
network. Puts are recorded.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from epics_collector.core import SourceListener, Subscription, Update, split_url


class _Subscription:
    def __init__(self, sources: InMemorySources, name: str, listener: SourceListener) -> None:
        self._sources, self.name, self.listener = sources, name, listener

    def close(self) -> None:
        listeners = self._sources.listeners[self.name]
        if self.listener in listeners:
            listeners.remove(self.listener)


class InMemorySources:
    """Sources held in memory: ``post`` an update, ``connect``/``disconnect`` a source."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[SourceListener]] = defaultdict(list)
        self.puts: list[tuple[str, Any]] = []

    def subscribe(self, url: str, listener: SourceListener, *, queue_size: int) -> Subscription:
        _, name = split_url(url)
        self.listeners[name].append(listener)
        return _Subscription(self, name, listener)

    async def put(self, url: str, value: Any) -> None:
        self.puts.append((split_url(url)[1], value))

    def detach(self) -> None:
        """Nothing held on the event loop."""

    def close(self) -> None:
        self.listeners.clear()

    # the test's side ---------------------------------------------------------------------

    def connect(self, name: str, value: Any, timestamp: float) -> None:
        """The source connects and sends its current value."""
        for listener in list(self.listeners[name]):
            listener.on_connection(True, "connected")
        self.post(name, value, timestamp)

    def disconnect(self, name: str) -> None:
        for listener in list(self.listeners[name]):
            listener.on_connection(False, "disconnected (test)")

    def post(self, name: str, value: Any, timestamp: float, severity: int = 0) -> None:
        for listener in list(self.listeners[name]):
            listener.on_update(Update(value, timestamp, severity))
