"""History on disk lost to damage: counted in StoreDamage and held in Message until seen.

:class:`Damage` is the collector's part that owns StoreDamage and AckDamage. A damaged
file, page or write-ahead log loses rows an archiver promised to keep; an operator must
see that whenever they look, so the Message holds it (MAJOR) until AckDamage or Clear.
"""

from __future__ import annotations

from collections.abc import Callable

from epics_collector.collector._names import CollectorPv
from epics_collector.core import AttrR, Int, Part, Severity, command

Report = Callable[[str, Severity], None]


class Damage(Part):
    """Counts rows lost to damage and holds the news until acknowledged."""

    store_damage = AttrR(
        Int(),
        name=CollectorPv.STORE_DAMAGE,
        description=(
            "Rows of the history on disk lost to damage (a damaged file, page or write-ahead "
            "log; also in Dropped): MAJOR, and held in Message, until AckDamage or Clear"
        ),
    )

    def __init__(self, hold: Report, release: Callable[[], None], report: Report) -> None:
        """``hold`` keeps a text in Message (``release`` lets it go); ``report`` says news."""
        self._hold, self._release, self._report = hold, release, report
        self.store_damage.set(0)

    @property
    def lost(self) -> int:
        """Rows lost to damage since the last Clear."""
        return int(self.store_damage.value or 0)

    def count(self, rows: int, text: str) -> None:
        """``rows`` on disk were lost (``text`` says how): counted, and held in Message."""
        lost = self.lost + rows
        self.store_damage.set(lost, severity=Severity.MAJOR)
        self._hold(f"{text} (StoreDamage {lost}; put 1 to AckDamage once seen)", Severity.MAJOR)

    @command(name=CollectorPv.ACK_DAMAGE)
    async def acknowledge(self) -> None:
        """Acknowledge the history lost to damage: Message may show other news again."""
        self._release()
        lost = self.lost
        self.store_damage.set(lost, severity=Severity.MINOR if lost else Severity.NO_ALARM)
        self._report(
            f"store damage acknowledged ({lost} rows lost; see StoreDamage)", Severity.NO_ALARM
        )

    def clear(self) -> None:
        """The history was cleared: nothing lost any more, and Message is free."""
        self.store_damage.set(0)
        self._release()
