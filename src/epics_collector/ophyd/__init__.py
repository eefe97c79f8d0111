"""ophyd-async devices and bluesky plan stubs for collectors, processing devices, factories.

Needs the ``ophyd`` extra (from a clone: ``pip install -c requirements/lock.txt -e '.[ophyd]'``).
"""

from epics_collector.ophyd._collector import (
    CollectorChannel,
    CollectorChannelAsset,
    CollectorDevice,
)
from epics_collector.ophyd._factory import DeviceTable, FactoryDevice
from epics_collector.ophyd._plans import collect_channels, create_collector, record_during
from epics_collector.ophyd._processing import ProcessingDevice
from epics_collector.ophyd._view import HistoryView

__all__ = [
    "CollectorChannel",
    "CollectorChannelAsset",
    "CollectorDevice",
    "DeviceTable",
    "FactoryDevice",
    "HistoryView",
    "ProcessingDevice",
    "collect_channels",
    "create_collector",
    "record_during",
]
