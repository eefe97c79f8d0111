"""Per-channel data reduction, like the EPICS compress record: include, compress, deadband.

A row passes three stages in order:

1. **include** (the compress record's ILIL/IHIL): values outside ``[low, high]`` are not
   recorded and are counted as excluded.
2. **compress**: ``every`` row, or one row per group of ``n`` (``mean``, ``min``, ``max``,
   ``median``, ``first``, ``last``), or one row per ``period`` (the last row of each period
   window, windows aligned to multiples of ``period`` in POSIX time). ``median`` of an
   even group is the upper of the two middle values (as the compress record computes it
   for arrays; for scalar inputs the record averages instead). A group's row has the
   time of the group's **last** input (as a compress record with ``TSEL`` on its input),
   the **worst** severity of the group and that row's status. A partial group is dropped
   when recording stops or the source disconnects, as the compress record does on reset.
3. **deadband** (MDEL-like): a row is recorded only if its value differs from the last
   recorded one by more than ``absolute``, or by more than ``relative`` percent of it; a
   change of alarm severity always passes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from epics_collector.core import Finite

Row = tuple[float, Any, int, int]  # time, value, severity, status
GROUP_ALGORITHMS: dict[str, Callable[[list[float]], float]] = {
    "mean": lambda v: sum(v) / len(v),
    "min": min,
    "max": max,
    "median": statistics.median_high,  # the compress record's psource[n/2] after sorting
    "first": lambda v: v[0],
    "last": lambda v: v[-1],
}
NUMERIC_ONLY = {"mean", "min", "max", "median"}


class Compress(BaseModel):
    """``{algorithm: mean, n: 10}``, ``{algorithm: periodic, period: 1.0}`` or ``every``.

    Frozen: channels that declare none share one ``every`` (:data:`EVERY`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["every", "mean", "min", "max", "median", "first", "last", "periodic"] = (
        "every"
    )
    n: int = Field(
        default=1, ge=1, le=1_000_000, description="inputs per output for N-to-1 algorithms"
    )
    period: float | None = Field(
        default=None,
        ge=1e-6,
        le=31_536_000,
        description="seconds, for periodic (1 us .. 1 year)",
    )

    @model_validator(mode="after")
    def _check(self) -> Compress:
        if self.algorithm == "periodic" and self.period is None:
            raise ValueError("periodic compression needs a period (seconds)")
        if self.algorithm != "periodic" and self.period is not None:
            raise ValueError(f"period is only for periodic compression, not {self.algorithm}")
        return self


#: The reduction of a channel that declares none (shared: one instance, not one per channel).
EVERY = Compress(algorithm="every", n=1, period=None)


class Include(BaseModel):
    """Record only values in ``[low, high]`` (the compress record's ILIL/IHIL)."""

    model_config = ConfigDict(extra="forbid")

    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _check(self) -> Include:
        if not self.low <= self.high:
            raise ValueError(f"include.low ({self.low}) must not exceed include.high ({self.high})")
        return self


class Deadband(BaseModel):
    """Record only changes larger than ``absolute`` or ``relative`` percent (one of them)."""

    model_config = ConfigDict(extra="forbid")

    absolute: float | None = Field(default=None, ge=0, le=1e300)
    relative: float | None = Field(
        default=None, ge=0, le=1e6, description="percent of the last value"
    )

    @model_validator(mode="after")
    def _check(self) -> Deadband:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("deadband needs exactly one of absolute or relative")
        return self


class Reducer:
    """The include -> compress -> deadband pipeline of one channel."""

    def __init__(self, compress: Compress, include: Include | None, deadband: Deadband | None):
        self.compress, self.include, self.deadband = compress, include, deadband
        self.excluded = 0
        self._group: list[Row] = []
        self._window: float | None = None
        self._last: Row | None = None

    @property
    def passes_everything(self) -> bool:
        """No stage would change the stream."""
        return self.compress.algorithm == "every" and not self.include and not self.deadband

    @property
    def keeps_every_row(self) -> bool:
        """Compression is ``every`` (include limits and deadband may still apply)."""
        return self.compress.algorithm == "every"

    def reset(self) -> None:
        """Drop a partial group (recording stopped, source disconnected)."""
        self._group, self._window = [], None

    def push(self, row: Row) -> Row | None:
        """Feed one input row; return the row to record, if any."""
        value = row[1]
        if self.include is not None and not self.include.low <= value <= self.include.high:
            self.excluded += 1
            return None
        out = self._compress(row)
        if out is None or not self._changed(out):
            return None
        self._last = out
        return out

    def flush(self) -> Row | None:
        """The pending periodic row (recording stops); N-to-1 partial groups are dropped."""
        out = None
        if self.compress.algorithm == "periodic" and self._group:
            out = _combine(self._group, self._group[-1][1])
            out = out if self._changed(out) else None
        self.reset()
        if out is not None:
            self._last = out
        return out

    def _compress(self, row: Row) -> Row | None:
        algorithm = self.compress.algorithm
        if algorithm == "every":
            return row
        if algorithm == "periodic":
            assert self.compress.period is not None
            window = math.floor(row[0] / self.compress.period)
            out = None
            if self._group and window != self._window:
                out = _combine(self._group, self._group[-1][1])
                self._group = []
            self._window = window
            self._group.append(row)
            return out
        self._group.append(row)
        if len(self._group) < self.compress.n:
            return None
        group, self._group = self._group, []
        return _combine(group, GROUP_ALGORITHMS[algorithm]([r[1] for r in group]))

    def _changed(self, row: Row) -> bool:
        last, band = self._last, self.deadband
        if band is None or last is None or row[2] != last[2]:
            return True
        if isinstance(row[1], str) or isinstance(last[1], str):
            return row[1] != last[1]
        delta = abs(row[1] - last[1])
        if math.isnan(delta):
            return not (math.isnan(row[1]) and math.isnan(last[1]))
        if band.absolute is not None:
            return delta > band.absolute
        assert band.relative is not None
        return delta > band.relative / 100.0 * abs(last[1])


def _combine(group: list[Row], value: Any) -> Row:
    worst = max(group, key=lambda r: r[2])
    return (group[-1][0], value, worst[2], worst[3])
