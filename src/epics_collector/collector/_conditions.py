"""Conditions on a PV's value for triggers: ``> 0.5``, ``== 1``, ``!= 0``, ``rising``, ...

| condition | holds while | fires when |
|---|---|---|
| ``> x`` ``>= x`` ``< x`` ``<= x`` ``== x`` ``!= x`` | the comparison is true | it becomes true |
| ``rising`` | the value is non-zero | it goes from zero to non-zero |
| ``falling`` | the value is zero | it goes from non-zero to zero |
| ``change`` | (never) | the value differs from the previous one |

The first value seen (the PV's state when the device subscribes) never fires.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_PATTERN = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_WORDS = ("rising", "falling", "change")


class Condition:
    """A parsed condition; feed it every value with :meth:`update`."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self._previous: Any = None
        word = self.text.lower()
        if word in _WORDS:
            self.kind, self.threshold = word, math.nan
            return
        match = _PATTERN.match(self.text)
        if match is None:
            raise ValueError(
                f"cannot parse condition {text!r}: use a comparison such as '> 0.5' or '== 1', "
                "or rising, falling, change"
            )
        self.kind, self.threshold = match.group(1), float(match.group(2))

    def holds(self, value: Any) -> bool:
        """Whether the condition is true for ``value`` (level)."""
        if self.kind == "rising":
            return bool(value)
        if self.kind == "falling":
            return not value
        if self.kind == "change":
            return False
        return _COMPARISONS[self.kind](float(value), self.threshold)

    def update(self, value: Any) -> bool:
        """Record ``value``; True if the condition fires on it (an edge)."""
        previous, self._previous = self._previous, value
        if previous is None:
            return False
        if self.kind == "change":
            return bool(value != previous)
        return self.holds(value) and not self.holds(previous)


class When(BaseModel):
    """A condition on a PV: ``{pv: LAB:Beam, when: "> 0.5"}``."""

    model_config = ConfigDict(extra="forbid")

    pv: str = Field(min_length=1, description="pva://NAME, ca://NAME or NAME")
    when: str = Field(description="'> 0.5', '== 1', '!= 0', rising, falling, change")

    @field_validator("when")
    @classmethod
    def _parses(cls, when: str) -> str:
        Condition(when)
        return when


class Trigger(When):
    """A trigger window: freeze ``pre`` seconds before and ``post`` after each firing."""

    pre: float = Field(default=10.0, ge=0, le=86400, description="seconds before the trigger")
    post: float = Field(default=5.0, ge=0, le=86400, description="seconds after the trigger")
    max_snapshots: int = Field(default=10, ge=1, le=1000, description="oldest are discarded")
