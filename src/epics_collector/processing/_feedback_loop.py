"""A processing device's feedback: FeedbackEnable, FeedbackSkipped, and what is written.

:class:`FeedbackLoop` is the processing device's part that closes the loop. It decides
on the event loop whether a run's outputs may be written at all (the inputs usable, the
output a finite number and not INVALID) and hands them to :class:`FeedbackWriters`,
which decide at write time (staleness, limits) and write one value at a time per target.
Every write not made is counted in FeedbackSkipped and said in Message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from epics_collector.core import (
    AttrR,
    AttrRW,
    Int,
    Operation,
    Part,
    Severity,
    Sources,
    Subscription,
    Update,
)
from epics_collector.processing._api import Input
from epics_collector.processing._config import Feedback, ProcessingConfig
from epics_collector.processing._feedback import FeedbackWriters
from epics_collector.processing._names import ProcessingPv
from epics_collector.processing._runner import Runner

FEEDBACK_DRAIN = 5.0  # seconds FeedbackEnable 0 waits for the writes under way
Report = Callable[[str, Severity], None]


class FeedbackLoop(Part):
    """Writes a processing device's outputs to their feedback targets, when allowed."""

    feedback_enable = AttrRW(
        Int(low=0, high=1),
        name=ProcessingPv.FEEDBACK_ENABLE,
        description="1: write feedback outputs to their targets",
        access=Operation.FEEDBACK,
    )
    feedback_skipped = AttrR(
        Int(),
        name=ProcessingPv.FEEDBACK_SKIPPED,
        description="Feedback writes not made: stale, INVALID or non-finite outputs, or failed",
    )

    def __init__(
        self,
        config: ProcessingConfig,
        outputs: Mapping[str, AttrR[Any]],
        runner: Runner,
        sources: Sources | None,
        running: Callable[[], bool],
        report: Report,
    ) -> None:
        """``running()`` says whether the device is enabled and healthy."""
        self.entries = list(config.feedback)
        self._outputs, self._runner, self._sources = outputs, runner, sources
        self._running, self._report = running, report
        self._off = True  # set by FeedbackEnable 0 before its put completes, and by close
        #: One writer per feedback target, the newest output wins (event loop).
        self.writers = FeedbackWriters(
            self.entries,
            put=self._put,
            readback=self._readback,
            allowed=self.allowed,
            not_made=self.not_made,
            report=report,
        )
        self.feedback_skipped.set(0)

    @property
    def wanted(self) -> bool:
        """Whether outputs are to be written (configured and FeedbackEnable 1)."""
        return bool(self.entries and self.feedback_enable.value)

    def allowed(self) -> bool:
        """Whether a write may start now (enabled, not being switched off, running)."""
        return self.wanted and not self._off and self._running()

    @feedback_enable.on_put
    async def _enable(self, value: int) -> None:
        if value and not self.feedback_enable.value:
            # closing the loop starts from a fresh processor state: a PID must not carry
            # the integral it wound up while the loop was open
            self._runner.ask_reset()
        self._off = not value
        if not value:  # the put answers once no write is on its way, and none starts
            await self.writers.drain(FEEDBACK_DRAIN)
        self._report("feedback enabled" if value else "feedback disabled", Severity.NO_ALARM)

    def subscribe(self, sources: Sources) -> list[Subscription]:
        """Watch each target's value (for ``max_step``)."""
        return [
            sources.subscribe(entry.target, _Readback(self._runner, entry.target), queue_size=4)
            for entry in self.entries
        ]

    def offer(self, inputs: Mapping[str, Input], outputs: Mapping[str, Any]) -> None:
        """Offer a run's feedback outputs to their targets' writers (event loop).

        What this run's outputs and inputs say is checked here (an unusable input, an
        output that is not a finite number or is INVALID); staleness and limits are
        checked by the writer when the put starts.
        """
        if not self.allowed():
            return
        newest = max(i.timestamp for i in inputs.values())
        suspended = _unusable_input(inputs)
        for index, entry in enumerate(self.entries):
            if entry.output not in outputs:
                continue
            if suspended:  # whatever the processor made of it (pid clamps NaN to low)
                self.not_made(f"feedback to {entry.target} suspended: {suspended}", Severity.MAJOR)
                continue
            output = outputs[entry.output]
            reason = self._refusal(entry, output)
            if reason:
                self.not_made(f"feedback to {entry.target} skipped: {reason}")
                continue
            self.writers.offer(index, float(output), newest)

    def run_failed(self, text: str) -> None:
        """A run failed, so no target got its write (event loop): counted, said."""
        targets = ", ".join(entry.target for entry in self.entries)
        self.not_made(f"feedback to {targets} skipped: {text}")

    def not_made(self, text: str, severity: Severity = Severity.MINOR) -> None:
        """Count and show a feedback write that was not made (event loop)."""
        self.feedback_skipped.set(self.feedback_skipped.value + 1, severity=Severity.MINOR)
        self._report(text, severity)

    def reset(self) -> None:
        """Zero FeedbackSkipped (Reset)."""
        self.feedback_skipped.set(0)

    async def close(self) -> None:
        """Start no write from now on; wait for those under way (the device stops)."""
        self._off = True
        await self.writers.drain(FEEDBACK_DRAIN)

    async def _put(self, target: str, value: float) -> None:
        assert self._sources is not None
        await self._sources.put(target, value)

    def _readback(self, target: str) -> float | None:
        current = self._runner.target(target)
        return None if current is None else float(current.value)

    def _refusal(self, entry: Feedback, output: Any) -> str:
        try:
            number = float(output)
        except (TypeError, ValueError):
            return f"the output {entry.output} is not a number ({output!r})"
        if not math.isfinite(number):  # never clamp a NaN into a limit and write that
            return f"the output {entry.output} is {number}"
        if self._outputs[entry.output].reading.severity >= Severity.INVALID:
            return "the output is INVALID"
        return ""


class _Readback:
    """Keeps the current value of a feedback target (for max_step)."""

    def __init__(self, runner: Runner, target: str) -> None:
        self.runner, self.target = runner, target

    def on_update(self, update: Update) -> None:
        self.runner.target_seen(self.target, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        if not connected:
            self.runner.target_seen(self.target, None)

    def on_loss(self, missing: int | None) -> None:
        """Only the target's newest value matters (for max_step)."""


def _unusable_input(inputs: Mapping[str, Input]) -> str:
    """Why feedback must not act on these inputs (a scalar NaN or inf, INVALID), or ""."""
    for name, given in inputs.items():
        if given.severity >= Severity.INVALID:
            return f"input {name} is INVALID"
        value = given.value
        if isinstance(value, float | int | np.floating | np.integer) and not math.isfinite(
            float(value)
        ):
            return f"input {name} is {float(value)}"
    return ""
