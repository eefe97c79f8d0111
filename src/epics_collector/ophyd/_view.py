"""A history view as an ophyd-async device: a time range of a channel, binned on the server."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from ophyd_async.core import Array1D, SignalR, SignalRW, StandardReadable, StandardReadableFormat
from ophyd_async.epics.core import PviDeviceConnector

from epics_collector.collector import ViewPv, view_pv


class HistoryView(StandardReadable):
    """``<prefix><alias>:View:*`` of a collector's number channel.

    Set ``start``/``end`` (POSIX seconds; 0: the oldest / the newest row, so ``end`` 0
    follows the recording), ``points`` and ``operator`` (``minmax`` by default); read
    ``time``, ``value`` (hinted), ``min`` and ``max``. The collector reduces the range on
    its side: reading a view of 1e7 samples moves ``points`` rows, not the history.
    """

    start: Annotated[SignalRW[float], StandardReadableFormat.CONFIG_SIGNAL]
    end: Annotated[SignalRW[float], StandardReadableFormat.CONFIG_SIGNAL]
    points: Annotated[SignalRW[int], StandardReadableFormat.CONFIG_SIGNAL]
    operator: Annotated[SignalRW[str], StandardReadableFormat.CONFIG_SIGNAL]
    time: Annotated[SignalR[Array1D[np.float64]], StandardReadableFormat.UNCACHED_SIGNAL]
    value: Annotated[
        SignalR[Array1D[np.float64]],
        StandardReadableFormat.HINTED_UNCACHED_SIGNAL,
    ]
    min: Annotated[SignalR[Array1D[np.float64]], StandardReadableFormat.UNCACHED_SIGNAL]
    max: Annotated[SignalR[Array1D[np.float64]], StandardReadableFormat.UNCACHED_SIGNAL]

    def __init__(self, collector_prefix: str, alias: str, name: str = "") -> None:
        self.alias = alias
        view = view_pv(alias, ViewPv.START).removesuffix(ViewPv.START)  # alias:View:
        super().__init__(name=name, connector=PviDeviceConnector(collector_prefix + view))
