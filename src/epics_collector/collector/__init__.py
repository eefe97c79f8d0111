"""The collector device: lossless on-demand recording of many PVs, history served as PVs."""

from epics_collector.collector._config import ChannelConfig, CollectorConfig, Limits, default_alias
from epics_collector.collector._device import Collector, CollectorStates
from epics_collector.collector._recorder import Channel, Event, Recorder

__all__ = [
    "Channel",
    "ChannelConfig",
    "Collector",
    "CollectorConfig",
    "CollectorStates",
    "Event",
    "Limits",
    "Recorder",
    "default_alias",
]
