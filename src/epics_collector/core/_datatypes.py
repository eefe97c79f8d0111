"""Datatypes of device PVs: each carries its metadata and checks values put to it.

The PVA layer maps each datatype to one normative type (NTScalar, NTEnum,
NTScalarArray, NTTable, NTNDArray); device logic only sees these classes.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, kw_only=True)
class DataType(ABC):
    """Base of all datatypes."""

    @property
    @abstractmethod
    def initial(self) -> Any:
        """Value a PV of this type holds before anything is set."""

    @abstractmethod
    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to this type; raise ``ValueError`` saying why not."""


@dataclass(frozen=True, kw_only=True)
class _Number(DataType):
    units: str = ""
    low: float | None = None
    high: float | None = None

    def _check_limits(self, value: float) -> None:
        if self.low is not None and value < self.low:
            raise ValueError(f"{value} is below the lower limit {self.low}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{value} is above the upper limit {self.high}")


@dataclass(frozen=True, kw_only=True)
class Int(_Number):
    """A signed integer scalar (NTScalar ``i`` or ``l``)."""

    width: int = 64

    @property
    def initial(self) -> int:
        return 0

    @functools.cached_property
    def _bound(self) -> int:
        return 1 << (self.width - 1)

    def coerce(self, value: Any) -> int:
        if type(value) is int and self.low is None and self.high is None:  # on every post
            if -self._bound <= value < self._bound:
                return value
        if isinstance(value, bool | np.bool_):
            value = int(value)
        if isinstance(value, float | np.floating):
            if not float(value).is_integer():
                raise ValueError(f"{value!r} is not an integer")
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip(), 0)
            except ValueError:
                raise ValueError(f"{value!r} is not an integer") from None
        if not isinstance(value, int | np.integer):
            raise ValueError(f"{value!r} is not an integer")
        value = int(value)
        bound = self._bound
        if not -bound <= value < bound:
            raise ValueError(f"{value} does not fit in {self.width} bits")
        self._check_limits(value)
        return value


@dataclass(frozen=True, kw_only=True)
class Float(_Number):
    """A double scalar (NTScalar ``d``) with display precision."""

    precision: int = 3

    @property
    def initial(self) -> float:
        return 0.0

    def coerce(self, value: Any) -> float:
        if type(value) is float and self.low is None and self.high is None:
            return value  # the common case, on every output post
        if isinstance(value, str):
            value = value.strip()
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isnan(result):
            self._check_limits(result)
        return result


@dataclass(frozen=True, kw_only=True)
class Bool(DataType):
    """A boolean scalar (NTScalar ``?``)."""

    @property
    def initial(self) -> bool:
        return False

    def coerce(self, value: Any) -> bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | np.integer) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise ValueError(f"{value!r} is not a boolean (use 0 or 1)")


_BOOL_WORDS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}


@dataclass(frozen=True, kw_only=True)
class String(DataType):
    """A string scalar (NTScalar ``s``)."""

    max_length: int = 4096

    @property
    def initial(self) -> str:
        return ""

    def coerce(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        if len(value) > self.max_length:
            raise ValueError(f"string longer than {self.max_length} characters")
        return value


@dataclass(frozen=True, kw_only=True)
class Enum(DataType):
    """One of a fixed list of choices (NTEnum); values are choice strings."""

    choices: Sequence[str]

    @property
    def initial(self) -> str:
        return self.choices[0]

    def coerce(self, value: Any) -> str:
        if isinstance(value, str) and value in self.choices:
            return value
        if isinstance(value, int | np.integer) and 0 <= value < len(self.choices):
            return self.choices[int(value)]
        raise ValueError(f"{value!r} is not one of {list(self.choices)}")

    def index(self, value: str) -> int:
        """Index of a choice."""
        return list(self.choices).index(value)


@dataclass(frozen=True, kw_only=True)
class Waveform(DataType):
    """A 1-D array (NTScalarArray) of ``dtype``; ``str`` gives a string array."""

    dtype: npt.DTypeLike = np.float64
    units: str = ""
    precision: int = 3

    @property
    def initial(self) -> np.ndarray:
        return np.zeros(0, dtype=self.dtype)

    def coerce(self, value: Any) -> np.ndarray:
        try:
            array = np.ascontiguousarray(value, dtype=self.dtype)  # p4p needs contiguous
        except (TypeError, ValueError):
            raise ValueError(f"not an array of {np.dtype(self.dtype).name}") from None
        if array.ndim != 1:
            raise ValueError(f"expected a 1-D array, got shape {array.shape}")
        return array


@dataclass(frozen=True, kw_only=True)
class Table(DataType):
    """Columns of equal length (NTTable); values are mappings column -> 1-D array."""

    columns: Mapping[str, npt.DTypeLike] = field(default_factory=dict)

    @property
    def initial(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(0, dtype=dtype) for name, dtype in self.columns.items()}

    def coerce(self, value: Any) -> dict[str, np.ndarray]:
        if not isinstance(value, Mapping):
            raise ValueError("a table is a mapping of column name to array")
        unknown = set(value) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; columns are {list(self.columns)}")
        table = {
            name: np.asarray(value.get(name, ()), dtype=dt) for name, dt in self.columns.items()
        }
        lengths = {len(column) for column in table.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns differ in length: {sorted(lengths)}")
        return table


@dataclass(frozen=True, kw_only=True)
class NDArray(DataType):
    """An N-dimensional array (NTNDArray), e.g. an image (rows, columns).

    ``dtype=None`` keeps whatever numeric dtype the values have.
    """

    dtype: npt.DTypeLike | None = np.float64
    ndim: int = 2

    @property
    def initial(self) -> np.ndarray:
        return np.zeros((0,) * self.ndim, dtype=self.dtype or np.float64)

    def coerce(self, value: Any) -> np.ndarray:
        array = np.asarray(value, dtype=self.dtype)
        if array.ndim != self.ndim:
            raise ValueError(f"expected {self.ndim} dimensions, got shape {array.shape}")
        return array


#: What a PVI entry may give: read, write, read-write PV, command (put 1), sub-device's PVI.
PVI_ACCESS = frozenset({"r", "w", "rw", "x", "d"})


@dataclass(frozen=True, kw_only=True)
class Pvi(DataType):
    """A PVI description: ``{field: {access: pv_name}}`` (the structure PVI tools read).

    ophyd-async's ``PviDeviceConnector`` and FastCS use this layout: each field of the
    device names its PV by access (``r``, ``w``, ``rw``, ``x`` for a command) or the PVI
    PV of a sub-device (``d``). Its structure depends on the fields, so the PVA layer
    builds its type from each value.
    """

    @property
    def initial(self) -> dict[str, dict[str, str]]:
        return {}

    def coerce(self, value: Any) -> dict[str, dict[str, str]]:
        if not isinstance(value, Mapping):
            raise ValueError(f"a PVI description is a mapping, not {type(value).__name__}")
        checked: dict[str, dict[str, str]] = {}
        for name, entry in value.items():
            if not isinstance(entry, Mapping) or not set(entry) <= PVI_ACCESS or not entry:
                raise ValueError(f"PVI field {name!r}: {dict(entry)} is not {{access: pv}}")
            checked[str(name)] = {str(a): str(pv) for a, pv in entry.items()}
        return checked
