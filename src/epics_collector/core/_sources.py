"""What devices see of source PVs: updates with timestamp and alarm, and connection changes.

The transports (``epics_collector.sources``) implement :class:`Sources`; devices only use
these protocols, so device logic never imports p4p or a CA library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Update:
    """One update of a source PV: its value, source timestamp (POSIX s) and alarm.

    ``sequence`` is the source's own update number where it has one (an NTNDArray's
    ``uniqueId``), else None. ``ns`` is the source timestamp exactly, in nanoseconds
    since the epoch, where the source gave one (``timestamp`` is that as a float).
    """

    value: Any
    timestamp: float
    severity: int = 0
    status: int = 0
    sequence: int | None = None
    ns: int | None = None


class SourceListener(Protocol):
    """Receives a source's updates, in order, possibly on a transport thread."""

    def on_update(self, update: Update) -> None:
        """A new value arrived."""

    def on_connection(self, connected: bool, reason: str) -> None:
        """The source connected or disconnected (``reason`` says why, for humans)."""

    def on_loss(self, missing: int | None) -> None:
        """Updates were lost before they reached :meth:`on_update`.

        ``missing`` is how many are known to be missing (a gap in the source's sequence
        numbers, such as an NTNDArray's ``uniqueId``); ``None`` means the monitor queue
        filled, so an unknown number (possibly none) were squashed.
        """


class Subscription(Protocol):
    """An open subscription; close it to stop updates."""

    def close(self) -> None:
        """Stop delivering updates."""


class Sources(Protocol):
    """Opens subscriptions to source PVs named as ``pva://NAME``, ``ca://NAME`` or ``NAME``."""

    def subscribe(self, url: str, listener: SourceListener, *, queue_size: int) -> Subscription:
        """Monitor ``url`` losslessly (up to ``queue_size`` queued updates)."""
        ...

    async def put(self, url: str, value: Any) -> None:
        """Write ``value`` to a PV (closed loops); raise with the server's reason."""
        ...

    def detach(self) -> None:
        """Release what the running event loop holds; call on the loop before it ends."""

    def close(self) -> None:
        """Close every subscription and connection."""


def posix_seconds(seconds: int, nanoseconds: int) -> float:
    """One float for an EPICS (seconds, nanoseconds) stamp, computed as p4p does."""
    return seconds + nanoseconds * 1e-9


def posix_ns(seconds: int, nanoseconds: int) -> int:
    """An EPICS (seconds, nanoseconds) stamp exactly, as nanoseconds since the epoch."""
    return int(seconds) * 1_000_000_000 + int(nanoseconds)


def split_url(url: str) -> tuple[str, str]:
    """``"ca://X:Y"`` -> ``("ca", "X:Y")``; a bare name means PVAccess."""
    scheme, sep, name = url.partition("://")
    if not sep:
        return "pva", url
    if scheme not in ("pva", "ca"):
        raise ValueError(f"unknown scheme {scheme!r} in {url!r}; use pva:// or ca://")
    return scheme, name
