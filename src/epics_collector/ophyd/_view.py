"""A history view as an ophyd-async device: a time range of a channel, binned on the server."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from ophyd_async.core import Array1D, SignalR, SignalRW, StandardReadable, StandardReadableFormat
from ophyd_async.epics.core import EpicsDevice, PvSuffix


class HistoryView(StandardReadable, EpicsDevice):
    """``<prefix><alias>:View:*`` of a collector's number channel.

    Set ``start``/``end`` (POSIX seconds; 0: the oldest / the newest row, so ``end`` 0
    follows the recording), ``points`` and ``operator`` (``minmax`` by default); read
    ``time``, ``value`` (hinted), ``min`` and ``max``. The collector reduces the range on
    its side: reading a view of 1e7 samples moves ``points`` rows, not the history.
    """

    start: Annotated[SignalRW[float], PvSuffix("Start"), StandardReadableFormat.CONFIG_SIGNAL]
    end: Annotated[SignalRW[float], PvSuffix("End"), StandardReadableFormat.CONFIG_SIGNAL]
    points: Annotated[SignalRW[int], PvSuffix("Points"), StandardReadableFormat.CONFIG_SIGNAL]
    operator: Annotated[SignalRW[str], PvSuffix("Operator"), StandardReadableFormat.CONFIG_SIGNAL]
    time: Annotated[
        SignalR[Array1D[np.float64]], PvSuffix("Time"), StandardReadableFormat.UNCACHED_SIGNAL
    ]
    value: Annotated[
        SignalR[Array1D[np.float64]],
        PvSuffix("Value"),
        StandardReadableFormat.HINTED_UNCACHED_SIGNAL,
    ]
    min: Annotated[
        SignalR[Array1D[np.float64]], PvSuffix("Min"), StandardReadableFormat.UNCACHED_SIGNAL
    ]
    max: Annotated[
        SignalR[Array1D[np.float64]], PvSuffix("Max"), StandardReadableFormat.UNCACHED_SIGNAL
    ]

    def __init__(self, collector_prefix: str, alias: str, name: str = "") -> None:
        self.alias = alias
        super().__init__(f"pva://{collector_prefix}{alias}:View:", name=name)
