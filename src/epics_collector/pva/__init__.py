"""PVAccess transport: network configuration and serving devices with p4p."""

from epics_collector.pva import _format as pv_format
from epics_collector.pva._client import Client
from epics_collector.pva._decode import (
    Decoder,
    Metadata,
    alarm,
    decode,
    decoder_for,
    frame,
    metadata,
    sequence_for,
    stamp_and_alarm,
    timestamp,
)
from epics_collector.pva._format import Display
from epics_collector.pva._network import Network, free_port, listening_port
from epics_collector.pva._runner import pv_answers, serve_until_signal
from epics_collector.pva._search import answered, servers_by_guid
from epics_collector.pva._server import DeviceServer
from epics_collector.pva._tool import BadValueError, PvTool, ToolError, is_denial
from epics_collector.pva._types import NtMapping

__all__ = [
    "Decoder",
    "Metadata",
    "alarm",
    "decode",
    "decoder_for",
    "frame",
    "metadata",
    "sequence_for",
    "stamp_and_alarm",
    "timestamp",
    "BadValueError",
    "Client",
    "answered",
    "DeviceServer",
    "Network",
    "NtMapping",
    "PvTool",
    "ToolError",
    "free_port",
    "listening_port",
    "is_denial",
    "pv_format",
    "Display",
    "pv_answers",
    "serve_until_signal",
    "servers_by_guid",
]
