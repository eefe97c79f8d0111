"""A processing device's output PVs: one writer at a time, never backwards in time."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from epics_collector.core import AttrR, Severity, Status


class OutputPvs:
    """Sets the output PVs of a run, or marks them failed, under one lock.

    The processing thread publishes runs; the event loop's watchdog marks the outputs
    failed when a run overruns. Both go through here, so a run's outputs are posted
    together, and no output is ever posted with a timestamp older than one posted
    before (an archiver drops such a sample): a run's outputs carry its inputs' newest
    timestamp, raised to the last one posted if a source's clock went back.
    """

    def __init__(self, attrs: Mapping[str, AttrR[Any]]) -> None:
        self.attrs = dict(attrs)
        self._lock = threading.Lock()
        self._last = -math.inf  # the newest timestamp posted

    def publish(self, values: Mapping[str, Any], stamp: float, severity: Severity) -> None:
        """Post one run's outputs (raises ValueError for outputs not declared)."""
        unknown = set(values) - set(self.attrs)
        if unknown:
            raise ValueError(f"the processor returned undeclared outputs {sorted(unknown)}")
        status = Status.DEVICE if severity else Status.NO_STATUS
        with self._lock:
            stamp = self._advance(stamp)
            for name, value in values.items():
                if isinstance(value, np.ndarray) and value.ndim == 0:
                    value = value.item()
                self.attrs[name].set(value, timestamp=stamp, severity=severity, status=status)

    def fail(self, text: str, stamp: float | None = None) -> None:
        """Keep every output's value with a MAJOR alarm saying ``text``.

        ``stamp``: the failed run's inputs' newest time (None: no new time, as when the
        watchdog reports a run still in progress).
        """
        with self._lock:
            given = self._last if stamp is None else stamp
            stamp = self._advance(given if math.isfinite(given) else time.time())
            for attr in self.attrs.values():
                attr.set(
                    attr.value,
                    timestamp=stamp,
                    severity=Severity.MAJOR,
                    status=Status.RECORD,
                    message=text,
                )

    def _advance(self, stamp: float) -> float:
        self._last = max(self._last, stamp)
        return self._last
