"""ophyd-async devices and bluesky plan stubs for collectors, processing devices, factories.

Needs the ``ophyd`` extra: ``pip install epics-collector[ophyd]``.
"""

from epics_collector.ophyd._collector import (
    CollectorChannel,
    CollectorChannelAsset,
    CollectorDevice,
)
from epics_collector.ophyd._factory import DeviceTable, FactoryDevice
from epics_collector.ophyd._plans import collect_channels, create_collector, record_during
from epics_collector.ophyd._processing import ProcessingDevice

__all__ = [
    "CollectorChannel",
    "CollectorChannelAsset",
    "CollectorDevice",
    "DeviceTable",
    "FactoryDevice",
    "ProcessingDevice",
    "collect_channels",
    "create_collector",
    "record_during",
]
