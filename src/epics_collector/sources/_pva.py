"""PVAccess sources: p4p monitors with an explicit queue, decoded to :class:`Update`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from p4p import Value
from p4p.client.thread import Context, Disconnected, RemoteError

from epics_collector.core import SourceListener, Update, posix_seconds
from epics_collector.pva import Network

Decoder = Callable[[Value], Any]


def _decoder(value: Value) -> Decoder:
    """How to get a Python value out of this source's Values (chosen on the first one)."""
    nt = value.getID()
    if nt.startswith("epics:nt/NTEnum:"):
        return lambda v: v["value.index"]
    if nt.startswith("epics:nt/NTNDArray:"):

        def image(v: Value) -> np.ndarray:
            shape = [d["size"] for d in reversed(v["dimension"])]
            return np.array(v["value"]).reshape(shape)

        return image
    if "value" not in value:
        raise ValueError(f"{nt or 'structure'} has no value field")
    if isinstance(value["value"], np.ndarray):
        return lambda v: np.array(v["value"])  # own copy: p4p may reuse its buffer
    return lambda v: v["value"]


def _stamp(value: Value) -> tuple[float, int, int]:
    try:
        seconds = posix_seconds(value["timeStamp.secondsPastEpoch"], value["timeStamp.nanoseconds"])
        return seconds, value["alarm.severity"], value["alarm.status"]
    except KeyError:  # a plain structure without timeStamp/alarm: stamp on arrival
        return time.time(), 0, 0


class _PvaSubscription:
    def __init__(self, ctx: Any, name: str, listener: SourceListener, queue_size: int):
        self.name, self._listener = name, listener
        self._connected = False
        self._decode: Decoder | None = None
        request = f"record[queueSize={queue_size}]field()"
        self._sub = ctx.monitor(name, self._event, request=request, notify_disconnect=True)

    def _event(self, value: Value | Exception) -> None:
        if isinstance(value, Exception):
            reason = "disconnected" if isinstance(value, Disconnected) else str(value)
            if isinstance(value, RemoteError) or self._connected:
                self._connected = False
                self._listener.on_connection(False, reason)
            return
        if not self._connected:
            self._connected = True
            self._listener.on_connection(True, "connected")
        try:
            if self._decode is None:
                self._decode = _decoder(value)
            seconds, severity, status = _stamp(value)
            update = Update(self._decode(value), seconds, severity, status)
        except Exception as error:  # an undecodable source is reported, never fatal
            self._listener.on_connection(False, f"cannot decode {self.name}: {error}")
            return
        self._listener.on_update(update)

    def close(self) -> None:
        self._sub.close()


class PvaSources:
    """Opens PVA monitors; each one's callbacks run in order on a p4p worker thread."""

    def __init__(self, network: Network) -> None:
        # p4p gives each subscription one worker queue: its updates arrive in order
        self._ctx: Any = Context("pva", conf=network.client_conf(), useenv=network.useenv, nt=False)

    def subscribe(
        self, name: str, listener: SourceListener, *, queue_size: int
    ) -> _PvaSubscription:
        """Monitor ``name`` with ``record[queueSize=queue_size]``."""
        return _PvaSubscription(self._ctx, name, listener, queue_size)

    def detach(self) -> None:
        """Nothing is bound to an event loop."""

    def close(self) -> None:
        """Close the client context (and with it every subscription)."""
        self._ctx.close()
