"""A processing device's run counters as PVs: Count, Errors, Skipped, Overruns, times.

:class:`RunCounters` is the processing device's part that posts them. The processing
thread keeps the run counts (:class:`Tally`) and the inputs keep theirs, each under its
own lock; the event loop posts what changed at most :data:`COUNTER_RATE` times a second,
not once per run, and zeroes them on Reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from epics_collector.core import AttrR, Float, Int, Part, Severity, Status, command, scan
from epics_collector.processing._inputs import InputTable
from epics_collector.processing._names import ProcessingPv
from epics_collector.processing._tally import Tally

COUNTER_RATE = 10.0  # Count, Errors, Duration... posts per second at most (not per run)
Report = Callable[[str, Severity], None]


class RunCounters(Part):
    """Posts the run counters that changed; Reset zeroes them."""

    count = AttrR(Int(), name=ProcessingPv.COUNT, description="Runs that produced outputs")
    errors = AttrR(
        Int(), name=ProcessingPv.ERRORS, description="Runs that failed (each also in Message)"
    )
    skipped = AttrR(
        Int(),
        name=ProcessingPv.SKIPPED,
        description="Input updates replaced by newer ones before processing",
    )
    overruns = AttrR(
        Int(),
        name=ProcessingPv.OVERRUNS,
        description="Times an input's monitor queue filled (updates may be squashed)",
    )
    duration = AttrR(
        Float(units="s", precision=6), name=ProcessingPv.DURATION, description="Last run time"
    )
    duration_max = AttrR(
        Float(units="s", precision=6),
        name=ProcessingPv.DURATION_MAX,
        description="Longest run since Reset",
    )
    worker_restarts = AttrR(
        Int(),
        name=ProcessingPv.WORKER_RESTARTS,
        description="Processor worker processes killed and replaced (hung or died)",
    )

    def __init__(
        self,
        tally: Tally,
        inputs: InputTable,
        restarts: Callable[[], int],
        reset: Callable[[], None],
        report: Report,
    ) -> None:
        """``restarts()`` counts the worker's; ``reset()`` zeroes other parts' counters."""
        self._tally, self._inputs, self._restarts = tally, inputs, restarts
        self._reset, self._report = reset, report
        self.worker_restarts.set(0)

    @command(name=ProcessingPv.RESET)
    async def reset_counters(self) -> None:
        """Zero Count, Errors, Skipped, Overruns, FeedbackSkipped and DurationMax."""
        self._tally.reset()
        self._reset()
        with self._inputs.lock:
            self._inputs.skipped = self._inputs.overruns = 0
        self.publish()

    @scan(1.0 / COUNTER_RATE)
    async def publish_counters(self) -> None:
        """Post the counters that changed (at most COUNTER_RATE times a second)."""
        self.publish()

    def publish(self) -> None:
        """Post the counters that changed now (event loop)."""
        tally = self._tally.snapshot()
        with self._inputs.lock:
            skipped, overruns = self._inputs.skipped, self._inputs.overruns
        for attr, value in (
            (self.count, tally.count),
            (self.errors, tally.errors),
            (self.skipped, skipped),
            (self.duration, tally.duration),
            (self.duration_max, tally.duration_max),
        ):
            if _changed(attr, value):
                attr.set(value)
        restarts = self._restarts()
        if _changed(self.worker_restarts, restarts):
            self.worker_restarts.set(
                restarts, severity=Severity.MAJOR if restarts else Severity.NO_ALARM
            )
        if _changed(self.overruns, overruns):
            self.overruns.set(overruns, severity=Severity.MINOR if overruns else Severity.NO_ALARM)
            if overruns:
                self._report(
                    f"an input's monitor queue filled {overruns} times: updates may have "
                    "been squashed; the processor is slower than its inputs",
                    Severity.MINOR,
                )


def _changed(attr: AttrR[Any], value: Any) -> bool:
    """Whether ``attr`` must be posted: a new value, or none posted yet (still UNDEFINED)."""
    return attr.value != value or attr.reading.status == Status.UNDEFINED
