"""How a source value becomes a row of a channel's ring: chosen once per channel kind.

A channel's kind (number, string, waveform, image) fixes what its rows hold, so the
conversion is picked when the channel is made, not tested on every update; a channel of
kind ``auto`` gets its kind, and its conversion, from its source's first update
(:func:`kind_of`). A value that
cannot be converted raises ``TypeError`` or ``ValueError`` with the reason (the recorder
counts it in Dropped and says it once).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from epics_collector.collector._config import ChannelConfig
from epics_collector.storage import Ring

#: A source value -> the value of a row (raises TypeError or ValueError).
Coerce = Callable[[Any], Any]


def kind_of(value: Any) -> str | None:
    """The kind that records ``value`` (a source's decoded value); None if none does.

    An NTScalar or NTEnum (its index) or a CA number: number; a string: string; a 1-D
    array: waveform; a 2-D array (an NTNDArray's frame): image.
    """
    if isinstance(value, str):
        return "string"
    if isinstance(value, np.ndarray):
        return {0: "number", 1: "waveform", 2: "image"}.get(value.ndim)
    if isinstance(value, (int, float, np.number)):  # (bool is an int)
        return "number"
    return None


def coercer(kind: str, config: ChannelConfig, ring: Ring) -> Coerce:
    """The conversion of ``kind`` (the channel's, declared or found), into ``ring``'s rows."""
    if kind == "auto":
        return _unknown
    if kind == "number":
        return float
    if kind == "string":
        return _text
    if kind == "image":
        return functools.partial(_image, ring, config.shape)
    return functools.partial(_waveform, ring)


def _unknown(value: Any) -> Any:
    """An ``auto`` channel's value that no kind records (so its kind is not known)."""
    raise TypeError(f"no kind records {type(value).__name__} values (declare one)")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} value")
    return value


def _image(ring: Ring, shape: tuple[int, int] | None, value: Any) -> np.ndarray:
    """A 2-D row (a flat value reshaped to ``shape``); every frame has the first's shape."""
    if not isinstance(value, np.ndarray):
        raise TypeError("not an array")
    if value.ndim == 1 and shape is not None:
        value = value.reshape(shape)
    if value.ndim != 2:
        raise ValueError(f"an image must be 2-D (got shape {value.shape}); set shape")
    if ring.sized and value.shape != ring.row_shape:
        raise ValueError(f"image shape {value.shape} differs from {ring.row_shape}")
    return value


def _waveform(ring: Ring, value: Any) -> np.ndarray:
    """A 1-D row, padded (NaN or 0) or cut to the length of the first one recorded."""
    if not isinstance(value, np.ndarray):
        raise TypeError("not an array")
    value = value.ravel()
    if ring.sized and ring.row_shape and value.size != ring.row_shape[0]:
        length = ring.row_shape[0]
        padded = np.full(length, np.nan if value.dtype.kind == "f" else 0, ring.dtype)
        padded[: min(length, value.size)] = value[:length]
        value = padded
    return value
