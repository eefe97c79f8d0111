"""``start_when`` / ``stop_when``: start and stop recording on a condition PV's values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from epics_collector.collector._conditions import Condition, When
from epics_collector.core import Severity


class StartStop:
    """Decides Start/Stop from condition values (event loop); the device acts.

    ``start(reason)`` raises ValueError when recording cannot start (reported here);
    ``stop(reason)`` stops; ``recording()`` says whether it records; ``report`` shows text.
    Without ``stop_when``, recording stops when ``start_when`` no longer holds.
    """

    def __init__(
        self,
        start_when: When | None,
        stop_when: When | None,
        *,
        start: Callable[[], None],
        stop: Callable[[str], None],
        recording: Callable[[], bool],
        report: Callable[[str, Severity], None],
    ) -> None:
        self.whens = {"start_when": start_when, "stop_when": stop_when}
        self.conditions = {role: Condition(w.when) for role, w in self.whens.items() if w}
        self._start, self._stop, self._recording, self._report = start, stop, recording, report

    def inputs(self) -> list[tuple[str, str]]:
        """``(role, pv)`` of each condition to subscribe to."""
        return [(role, w.pv) for role, w in self.whens.items() if w is not None]

    def on_value(self, role: str, value: Any, timestamp: float) -> None:
        """A value of the ``role`` condition's PV (event loop)."""
        condition = self.conditions[role]
        try:
            fires, holds = condition.update(value), condition.holds(value)
        except (TypeError, ValueError) as error:
            self._report(f"{role}: cannot test {value!r}: {error}", Severity.MINOR)
            return
        recording = self._recording()
        if role == "start_when" and holds and not recording:
            self._start_for(f"start_when {condition.text} on {value!r}")
        elif recording and (
            (role == "stop_when" and fires)
            or (role == "start_when" and not holds and "stop_when" not in self.conditions)
        ):
            self._stop(f"{role} {condition.text} on {value!r}")

    def lost(self, role: str, pv: str, reason: str) -> None:
        """The condition PV went away: recording is not affected."""
        self._report(f"{role} PV {pv} {reason}; recording goes on", Severity.MINOR)

    def _start_for(self, reason: str) -> None:
        try:
            self._start()
        except ValueError as error:
            self._report(f"{reason}: not started: {error}", Severity.MINOR)
            return
        self._report(f"recording ({reason})", Severity.NO_ALARM)
