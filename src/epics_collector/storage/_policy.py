"""Retention policy: how long rows are kept raw, what they are reduced to, when deleted.

A factory's config holds the rules (``retention:``) and the disk budget
(``max_bytes:``). Durations are written ``30d``, ``12h``, ``90s``, ``2y`` (a year is
365 days) or as seconds; sizes ``200GB``, ``512MiB`` or as bytes. A rule that cannot
work is refused with its field named (pydantic's error location).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdwy]?)\s*")
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGTP]?)(i?)[bB]?\s*")
#: EAA operators a range of rows can be reduced to: each gives one row per bin that is
#: a value the PV had or the statistic of its values (not a count, not a spread)
REDUCERS = ("mean", "median", "min", "max", "firstSample", "lastSample")
LONGEST = 1000 * UNITS["y"]  # the longest duration a rule may give (s)
_REDUCER = re.compile(r"(?P<name>[A-Za-z]+)_(?P<n>[0-9]+)")


def _quantity(
    value: object, pattern: re.Pattern[str], scale: Callable[[re.Match[str]], float], what: str
) -> float:
    """A number as is, or the number of text ``pattern`` matches times ``scale(match)``.

    ValueError, saying what the text should be (``what``), otherwise.
    """
    if isinstance(value, bool):
        raise ValueError(f"give a number or text such as {what}")
    if isinstance(value, int | float):
        return float(value)
    match = pattern.fullmatch(str(value))
    if match is None:
        raise ValueError(f"{str(value)[:40]!r} is not {what}")
    return float(match[1]) * scale(match)


def seconds(value: object) -> float:
    """Seconds of a duration: a number, or text such as ``30d`` (ValueError if neither)."""
    what = "a duration: a number and one of s, m, h, d, w, y (30d, 12h, 2y)"
    number = _quantity(value, _DURATION, lambda m: UNITS[m[2] or "s"], what)
    if not number > 0:
        raise ValueError("a duration must be more than 0 s")
    return number


def byte_count(value: object) -> int:
    """Bytes of a size: a number, or text such as ``200GB`` / ``512MiB`` (ValueError if neither)."""

    def scale(match: re.Match[str]) -> float:
        return float((1024 if match[3] else 1000) ** " KMGTP".index(match[2].upper() or " "))

    number = _quantity(value, _SIZE, scale, "a size (200GB, 512MiB, 1e9)")
    if not number >= 1:
        raise ValueError("a size must be at least 1 byte")
    return int(number)


Duration = Annotated[float, BeforeValidator(seconds)]
Size = Annotated[int, BeforeValidator(byte_count)]


@dataclass(frozen=True)
class Reducer:
    """An EAA operator rows are reduced to: its name and bin width ``n`` (s)."""

    name: str
    n: int

    def __str__(self) -> str:
        return f"{self.name}_{self.n}"


def reducer(text: str) -> Reducer:
    """``mean_60`` as a :class:`Reducer` (ValueError naming what would work)."""
    match = _REDUCER.fullmatch(text.strip())
    if match is None or match["name"] not in REDUCERS or int(match["n"]) <= 0:
        raise ValueError(
            f"{text[:40]!r} cannot reduce stored rows: give OPERATOR_N with N seconds > 0 and "
            f"an operator whose rows are values of the PV: {', '.join(REDUCERS)}"
        )
    return Reducer(match["name"], int(match["n"]))


class RetentionRule(BaseModel):
    """One rule: the recordings it matches, and how long their rows are kept."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(
        default="*",
        min_length=1,
        max_length=200,
        description="glob of a recording's collector name or of any of its source PVs",
    )
    raw: Duration | None = Field(
        default=None,
        gt=0,
        le=LONGEST,
        description="every row is kept this long (none: for ever, or until keep)",
    )
    reduce: str | None = Field(
        default=None,
        description="after raw, only this EAA operator's rows are kept (mean_60, "
        "firstSample_3600, ...); number channels (other kinds stay raw until keep)",
    )
    keep: Duration | None = Field(
        default=None, gt=0, le=LONGEST, description="rows older than this are deleted (none: never)"
    )

    @model_validator(mode="after")
    def _works(self) -> RetentionRule:
        if self.reduce is not None:
            reducer(self.reduce)  # (raises, named by the field's location)
            if self.raw is None:
                raise ValueError("reduce needs raw: how long rows stay raw before they are reduced")
            if self.keep is not None and self.keep <= self.raw:
                raise ValueError(
                    f"keep ({self.keep:g} s) must be longer than raw ({self.raw:g} s) when "
                    "rows are reduced in between"
                )
        elif self.raw is not None and self.keep is not None and self.keep < self.raw:
            raise ValueError(f"keep ({self.keep:g} s) is shorter than raw ({self.raw:g} s)")
        return self

    @property
    def reducer(self) -> Reducer | None:
        """The operator rows are reduced to (None: not reduced)."""
        return reducer(self.reduce) if self.reduce is not None else None

    def matches(self, name: str, pvs: list[str]) -> bool:
        """Whether the rule is for a recording of collector ``name`` recording ``pvs``."""
        return any(fnmatch.fnmatchcase(text, self.match) for text in (name, *pvs))


class RetentionSettings(BaseModel):
    """The policy's fields, in a factory's config and in a persisting collector's."""

    retention: list[RetentionRule] = Field(
        default_factory=list,
        max_length=1000,
        description="how long recordings' rows are kept raw, what they are reduced to, and "
        "when they are deleted: the first rule matching a recording's name or a channel's "
        "PV applies to that channel (none: kept whole). A factory gives its own to the "
        "collectors it runs (they apply it to their rows on disk) and applies it to the "
        "retired recordings",
    )
    retention_every: Duration = Field(
        default=3600.0,
        ge=1.0,
        le=86400.0,
        description="how often the policy is applied (s or 1h)",
    )


def rule_for(rules: list[RetentionRule], name: str, pvs: list[str]) -> RetentionRule | None:
    """The first rule that matches (None: the recording is kept whole)."""
    return next((rule for rule in rules if rule.matches(name, pvs)), None)
