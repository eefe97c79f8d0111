"""PV families: PVs made when a client asks for them, not held while nobody uses them.

A device with a PV per channel and 100,000 channels cannot afford a served PV object per
channel: a :class:`PvFamily` answers for a whole set of names and makes the attribute of
one name on demand. Every :meth:`PvFamily.make` is matched by one
:meth:`PvFamily.release`; the family keeps what it made while it is in use (and may keep
it longer, for example while it holds settings a client put).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from epics_collector.core._attributes import AttrR


class PvFamily(Protocol):
    """A set of PV names (suffixes under the device's prefix) made on demand."""

    def has(self, name: str) -> bool:
        """Whether ``name`` belongs to the family (cheap: no object is made)."""
        ...

    def make(self, name: str) -> AttrR[Any]:
        """The attribute of ``name`` (a name :meth:`has` accepted), counted as in use.

        LookupError if the name went away since (its PV is then not served).
        """
        ...

    def release(self, name: str) -> None:
        """One use of ``name`` (one :meth:`make`) ended."""
        ...

    def names(self) -> Iterator[str]:
        """Every name of the family (for listings; may be long)."""
        ...
