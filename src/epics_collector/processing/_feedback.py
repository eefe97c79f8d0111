"""Closed-loop writes: one writer per feedback target, and the newest output wins.

A run's outputs are offered to the writers on the event loop. A target has at most one
put in flight and one value waiting: an offer replaces the waiting value (a loop wants
the newest output, never a backlog of old ones). Whether a value may still be written
(its inputs not older than ``max_age``) and how far it may move (``low``/``high``, and
``max_step`` from the target's readback) are decided when its put starts, not when it
was offered. So the puts of one target land in output order, one at a time, and none
carries a value older than the newest offered before its put began.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from epics_collector.core import Severity
from epics_collector.processing._config import Feedback

log = logging.getLogger(__name__)

#: Puts ``value`` to a PV (awaitable; raises on failure).
Put = Callable[[str, float], Awaitable[None]]
#: Says a write not made (counted in FeedbackSkipped): text, severity.
NotMade = Callable[[str, Severity], None]
#: Says news in Message: text, severity.
Report = Callable[[str, Severity], None]


@dataclass(frozen=True)
class Offer:
    """An output to write, and the newest source time of the inputs that made it."""

    value: float
    newest: float


class FeedbackWriters:
    """The writers of a processing device's feedback targets (event loop only)."""

    def __init__(
        self,
        entries: Sequence[Feedback],
        *,
        put: Put,
        readback: Callable[[str], float | None],
        allowed: Callable[[], bool],
        not_made: NotMade,
        report: Report,
    ) -> None:
        self.entries = list(entries)
        self._put, self._readback, self._allowed = put, readback, allowed
        self._not_made, self._report = not_made, report
        self._waiting: dict[int, Offer] = {}  # entry index: the value its writer puts next
        self._writers: dict[int, asyncio.Task[None]] = {}
        self._clamped: dict[int, str] = {}  # entry index: why its writes are limited now
        #: Offers replaced by a newer one before their put began (not a loss: the newest
        #: output is what a loop must write).
        self.superseded = 0

    def offer(self, index: int, value: float, newest: float) -> None:
        """Write ``value`` to entry ``index``'s target as soon as its writer is free."""
        if index in self._waiting:
            self.superseded += 1
        self._waiting[index] = Offer(value, newest)
        writer = self._writers.get(index)
        if writer is None or writer.done():
            self._writers[index] = asyncio.get_running_loop().create_task(self._write(index))

    def in_flight(self) -> int:
        """Writers with a put under way or a value waiting."""
        return sum(not writer.done() for writer in self._writers.values())

    async def drain(self, timeout: float) -> None:
        """Forget the waiting values and wait (up to ``timeout``) for the puts under way.

        Called once writes are no longer allowed (FeedbackEnable 0, stop): after it, no
        put starts.
        """
        self._waiting.clear()
        running = [writer for writer in self._writers.values() if not writer.done()]
        if running:
            await asyncio.wait(running, timeout=timeout)

    async def _write(self, index: int) -> None:
        entry = self.entries[index]
        try:
            while (offer := self._waiting.pop(index, None)) is not None:
                if not self._allowed():
                    self._waiting.clear()
                    return
                age = time.time() - offer.newest
                if age > entry.max_age:
                    self._not_made(
                        f"feedback to {entry.target} skipped: inputs are stale ({age:.1f} s old)",
                        Severity.MINOR,
                    )
                    continue
                value = self._limited(entry, offer.value)
                self._say_clamp(index, offer.value, value)
                try:
                    await self._put(entry.target, value)
                except Exception as error:
                    self._not_made(
                        f"feedback write to {entry.target} failed: {error}", Severity.MAJOR
                    )
        except Exception as error:  # a task nobody awaits: never let a bug vanish
            log.exception("feedback writer of %s", entry.target)
            self._not_made(f"feedback to {entry.target} failed: {error}", Severity.MAJOR)

    def _limited(self, entry: Feedback, value: float) -> float:
        """``value`` within ``[low, high]`` and ``max_step`` of the target's value now."""
        value = min(entry.high, max(entry.low, value))
        current = self._readback(entry.target)
        if entry.max_step is not None and current is not None:
            value = min(current + entry.max_step, max(current - entry.max_step, value))
        return value

    def _say_clamp(self, index: int, wanted: float, written: float) -> None:
        """Say (MINOR) when a target's writes start to be limited, and when they stop.

        A setpoint that sits at a limit while the output asks for more is a loop that
        cannot reach its goal: an operator must see it, once, not at every run.
        """
        entry = self.entries[index]
        if wanted == written:
            if self._clamped.pop(index, None) is not None:
                self._report(
                    f"feedback to {entry.target}: within its limits again", Severity.NO_ALARM
                )
            return
        if wanted > entry.high or wanted < entry.low:
            side = "high" if wanted > entry.high else "low"
            why = f"{side} {_g(written)} (feedback limit)"
        else:
            why = f"max_step {_g(entry.max_step or 0.0)} from the target's value"
        if self._clamped.get(index) != why:
            self._clamped[index] = why
            self._report(
                f"feedback to {entry.target} clamped: the output {entry.output} asks "
                f"{_g(wanted)}, limited to {why}",
                Severity.MINOR,
            )


def _g(number: float) -> str:
    return f"{number:.6g}"
