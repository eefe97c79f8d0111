"""A factory as an ophyd-async device: its device list and types, readable in plans."""

# no ``from __future__ import annotations``: ophyd-async reads the Table's column types

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from ophyd_async.core import Array1D, SignalR, StandardReadable, StandardReadableFormat, Table
from ophyd_async.epics.core import PviDeviceConnector


class DeviceTable(Table):
    """The factory's ``Devices`` NTTable."""

    name: Sequence[str]
    type: Sequence[str]
    prefix: Sequence[str]
    state: Sequence[str]
    pid: Array1D[np.int32]
    host: Sequence[str]
    started: Sequence[str]
    restarts: Array1D[np.int32]
    message: Sequence[str]


class FactoryDevice(StandardReadable):
    """A factory, built from its ``P:PVI``: ``devices`` (table), ``types``, ``state``..."""

    devices: Annotated[SignalR[DeviceTable], StandardReadableFormat.UNCACHED_SIGNAL]
    types: SignalR[Sequence[str]]
    state: SignalR[str]

    def __init__(self, prefix: str, name: str = "") -> None:
        self.prefix = prefix
        super().__init__(name=name, connector=PviDeviceConnector(prefix))
