"""The collector device: lossless on-demand recording of many PVs, history served as PVs."""

from epics_collector.collector._config import ChannelConfig, CollectorConfig, Limits, default_alias
from epics_collector.collector._device import Collector, CollectorStates
from epics_collector.collector._names import (
    ChannelPv,
    CollectorPv,
    ViewPv,
    channel_pv,
    view_pv,
)
from epics_collector.collector._recorder import Channel, Event, Recorder
from epics_collector.collector._views import parse_query

__all__ = [
    "Channel",
    "ChannelPv",
    "ChannelConfig",
    "Collector",
    "CollectorConfig",
    "CollectorPv",
    "CollectorStates",
    "Event",
    "Limits",
    "Recorder",
    "ViewPv",
    "channel_pv",
    "default_alias",
    "parse_query",
    "view_pv",
]
