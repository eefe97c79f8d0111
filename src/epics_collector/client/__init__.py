"""Python clients of factories and devices: one API for a local or a remote factory.

Blocking: :class:`Factory`, :class:`Collector`, :class:`Processor`. Asyncio:
:class:`AsyncFactory`, :class:`AsyncCollector`, :class:`AsyncProcessor` (the one
implementation; the blocking classes run it on a private event loop).
"""

from epics_collector.client._blocking import LoopThread
from epics_collector.client._connection import Connection, decode
from epics_collector.client._devices import (
    AsyncCollector,
    AsyncDevice,
    AsyncProcessor,
    Binned,
    History,
    ViewArgs,
)
from epics_collector.client._errors import (
    AccessDeniedError,
    ClientError,
    DeviceError,
    EmptyExportWarning,
    NoConnectionError,
)
from epics_collector.client._factory import AsyncFactory, DeviceInfo, default_prefix
from epics_collector.client._recordings import RecordingInfo, RetentionAction
from epics_collector.client._sync import Collector, Device, Factory, Processor

__all__ = [
    "AccessDeniedError",
    "AsyncCollector",
    "AsyncDevice",
    "AsyncFactory",
    "AsyncProcessor",
    "Binned",
    "ClientError",
    "Collector",
    "Connection",
    "Device",
    "DeviceError",
    "DeviceInfo",
    "RecordingInfo",
    "RetentionAction",
    "EmptyExportWarning",
    "Factory",
    "History",
    "LoopThread",
    "NoConnectionError",
    "Processor",
    "ViewArgs",
    "decode",
    "default_prefix",
]
