"""The processor's runs and every flag about them, owned by one object under one lock.

Three threads touch a processor: the processing thread runs it, the event loop changes
its parameters, enables it and watches the run time, and the sources' drain thread
updates the feedback targets' readbacks. :class:`Runner` owns what they share:

* the run lock: one setup, batch of runs, reset or teardown in the worker at a time;
* the parameters: a put hands a new set over, applied under the run lock between two
  batches, so every run sees one whole set and never an older one after a newer;
* the busy time and the timed-out flag the watchdog reads;
* the count of errors in a row, the request to set the processor up again;
* the newest value of each feedback target.

Everything but the worker call itself is kept under a small state lock, so a reader on
another thread never waits for a run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from epics_collector.core import Update
from epics_collector.processing._api import Input
from epics_collector.processing._worker import ProcessorWorker, RunResult


class Runner:
    """Runs batches in the worker and keeps the state around them (see the module text)."""

    def __init__(self, worker: ProcessorWorker, targets: Iterable[str] = ()) -> None:
        self.worker = worker
        self._run_lock = threading.Lock()  # one worker call at a time
        self._state = threading.Lock()  # every field below
        self._params: dict[str, Any] | None = None  # handed over, not applied yet
        self._busy_since: float | None = None  # monotonic start of the batch in progress
        self._timed_out = False  # the watchdog reported the batch in progress
        self._errors_in_row = 0
        self._reset = False  # set the processor up again before the next batch
        self._ready = False  # set up, and not torn down yet
        self._targets: dict[str, Update | None] = dict.fromkeys(targets)

    # the worker (processing thread, or the loop's executor at start) ---------------------

    def start(self) -> None:
        """Start the worker with its processor set up (raises if setup fails)."""
        with self._run_lock:
            self.worker.start()
            with self._state:
                self._ready = True

    @property
    def ready(self) -> bool:
        """Whether the processor is set up and not torn down."""
        return self._ready

    @property
    def busy(self) -> bool:
        """Whether a worker call (setup, batch, reset, teardown) is in progress."""
        return self._run_lock.locked()

    def process(self, batch: Sequence[Mapping[str, Input]]) -> list[RunResult]:
        """Run ``batch`` in the worker with the newest parameters handed over."""
        with self._run_lock:
            with self._state:
                params, self._params = self._params, None
                self._busy_since, self._timed_out = time.monotonic(), False
            try:
                return self.worker.process(batch, params)
            finally:
                with self._state:
                    self._busy_since = None

    def reset_if_asked(self) -> bool:
        """Set the processor up again if :meth:`ask_reset` was called; whether it was."""
        with self._run_lock:
            with self._state:
                asked, self._reset = self._reset, False
            if asked:
                self.worker.setup()
            return asked

    def stop(self) -> None:
        """Tear the processor down and end the worker (no run starts after this)."""
        with self._run_lock:
            with self._state:
                self._ready = False
            self.worker.stop()

    # hand-overs from other threads --------------------------------------------------------

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Use ``params`` from the next batch on (any thread); the newest set wins."""
        with self._state:
            self._params = dict(params)

    def ask_reset(self) -> None:
        """Set the processor up again (fresh state) before the next batch (any thread)."""
        with self._state:
            self._reset = True

    # errors and time ------------------------------------------------------------------------

    def overdue(self, limit: float) -> bool:
        """Whether the batch in progress passed ``limit`` seconds: true once per batch."""
        with self._state:
            since = self._busy_since
            if since is None or self._timed_out or time.monotonic() - since <= limit:
                return False
            self._timed_out = True
            return True

    def failed(self) -> int:
        """Count a failed run; the errors in a row now."""
        with self._state:
            self._errors_in_row += 1
            return self._errors_in_row

    def succeeded(self) -> None:
        """A run produced outputs: the errors in a row end (unless its batch overran)."""
        with self._state:
            if not self._timed_out:
                self._errors_in_row = 0

    def clear_errors(self) -> None:
        """Forget the errors in a row (Enable put again)."""
        with self._state:
            self._errors_in_row = 0

    @property
    def errors_in_row(self) -> int:
        """Failed runs since the last good one."""
        return self._errors_in_row

    # feedback targets -----------------------------------------------------------------------

    def target_seen(self, target: str, update: Update | None) -> None:
        """The newest value of a feedback target (None: disconnected); any thread."""
        with self._state:
            self._targets[target] = update

    def target(self, target: str) -> Update | None:
        """The newest value of a feedback target, if connected."""
        with self._state:
            return self._targets.get(target)
