"""Channel Access sources through aioca (asyncio, on EPICS base's own libca).

aioca delivers every update (``all_updates=True``) on the asyncio loop that subscribed,
so CA subscriptions must be opened from the device's event loop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import numpy as np
from aioca import FORMAT_TIME, _catools, camonitor, caput

from epics_collector.core import SourceListener, Status, Update, posix_ns, posix_seconds
from epics_collector.pva import Network

_UDF_ALARM = 17  # menuAlarmStat


def ca_status(status: int) -> int:
    """PVA ``alarm.status`` for a CA alarm condition (menuAlarmStat).

    QSRV serves a record's limit alarms (HIGH, HIHI, ...) with status DEVICE; we map
    every condition but NO_ALARM and UDF the same way, so that one PV recorded over CA
    or over PVA gives the same rows.
    """
    if status == 0:
        return Status.NO_STATUS
    return Status.UNDEFINED if status == _UDF_ALARM else Status.DEVICE


class _CaSubscription:
    def __init__(self, name: str, listener: SourceListener) -> None:
        self.name, self._listener = name, listener
        self._connected = False
        self._sub = camonitor(
            name,
            self._event,
            format=FORMAT_TIME,
            all_updates=True,
            notify_disconnect=True,
            connect_timeout=None,
        )

    def _event(self, value: Any) -> None:
        if not value.ok:
            if self._connected:
                self._connected = False
                self._listener.on_connection(False, "disconnected")
            return
        if not self._connected:
            self._connected = True
            self._listener.on_connection(True, "connected")
        raw: Any = value
        if isinstance(raw, np.ndarray):
            raw = np.array(raw)
        elif isinstance(raw, str):
            raw = str(raw)
        else:
            raw = raw.real
        self._listener.on_update(
            Update(
                raw,
                posix_seconds(*value.raw_stamp),
                int(value.severity),
                ca_status(int(value.status)),
                ns=posix_ns(*value.raw_stamp),
            )
        )

    def close(self) -> None:
        self._sub.close()


class CaSources:
    """Opens CA monitors. libca reads its settings from the process environment."""

    def __init__(self, network: Network) -> None:
        if not network.useenv:  # loopback: libca only knows the environment
            os.environ.update({k: v for k, v in network.variables.items() if "_CA_" in k})

    def subscribe(self, name: str, listener: SourceListener, *, queue_size: int) -> _CaSubscription:
        """Monitor ``name`` (every update; ``queue_size`` is not used by CA)."""
        return _CaSubscription(name, listener)

    async def put(self, name: str, value: Any) -> None:
        """Caput and wait for completion."""
        await caput(name, value, wait=True, timeout=5.0)

    def detach(self) -> None:
        """Clear the CA channels opened from the running loop (before the loop ends).

        aioca caches channels per event loop and has no public per-loop purge; without
        this, libca calls back into a closed loop when a server goes away later.
        """
        caches = _catools._Context._channel_caches  # noqa: SLF001
        cache = caches.pop(asyncio.get_running_loop(), None)
        if cache is not None:
            cache.purge()

    def close(self) -> None:
        """Nothing to close beyond the subscriptions and channels."""
