"""The runs of a processing device formed from its inputs, waiting for the worker.

:class:`RunQueue` owns them. A run's inputs are taken when the update that makes it
ready arrives (the trigger's meaning: "the newest of the others" is the newest *then*),
on whichever thread brought the update; the processing thread takes them in batches.
The queue is bounded in runs and in the array bytes they hold: when the processor falls
behind, the oldest runs go, counted in the inputs' ``skipped`` (the Skipped PV).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from epics_collector.processing._api import Input
from epics_collector.processing._inputs import InputTable

RUN_QUEUE = 4096  # runs formed and waiting for the worker, at most
RUN_QUEUE_BYTES = 256 << 20  # array data those runs may hold, at most
Run = dict[str, Input]


class RunQueue:
    """Runs formed from the inputs, oldest first, bounded (any thread)."""

    def __init__(
        self,
        inputs: InputTable,
        trigger: str,
        *,
        most: int = RUN_QUEUE,
        most_bytes: int = RUN_QUEUE_BYTES,
    ) -> None:
        self.inputs, self.trigger = inputs, trigger
        self.most, self.most_bytes = most, most_bytes
        self._runs: deque[Run] = deque()
        self._bytes = 0  # array bytes the queued runs hold
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def form(self) -> None:
        """Take every run the inputs make ready into the queue (the oldest go when full)."""
        with self._lock:
            while self.inputs.ready(self.trigger):
                run = self.inputs.take(self.trigger)
                self._runs.append(run)
                self._bytes += _nbytes(run)
                while len(self._runs) > self.most or self._bytes > self.most_bytes:
                    self._bytes -= _nbytes(self._runs.popleft())
                    with self.inputs.lock:
                        self.inputs.skipped += 1

    def take(self, most: int) -> list[Run]:
        """The oldest ``most`` runs (fewer if fewer wait), out of the queue."""
        with self._lock:
            batch = [self._runs.popleft() for _ in range(min(most, len(self._runs)))]
            self._bytes -= sum(_nbytes(run) for run in batch)
        return batch


def _nbytes(run: Run) -> int:
    """The array bytes a run holds (what queued runs cost in memory)."""
    return sum(v.value.nbytes for v in run.values() if isinstance(v.value, np.ndarray))
