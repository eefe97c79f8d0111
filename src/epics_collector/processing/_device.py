"""The processing device: inputs -> processor -> output PVs (and optional feedback).

What stays here is the state machine (Enable, Fault after too many errors) and the
processing thread; the rest are parts and helpers that own their state: the run
counters (:class:`RunCounters`), feedback (:class:`FeedbackLoop`), the parameters
(:class:`ParamPvs`) and the queue of formed runs (:class:`RunQueue`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from epics_collector.core import (
    AttrR,
    AttrRW,
    ConfigError,
    DataType,
    Device,
    Float,
    Int,
    NDArray,
    Operation,
    Severity,
    Sources,
    String,
    Subscription,
    Waveform,
    field_name,
    scan,
)
from epics_collector.processing._api import Input, Processor
from epics_collector.processing._config import OutputConfig, Period, ProcessingConfig
from epics_collector.processing._counters import RunCounters
from epics_collector.processing._feedback_loop import FeedbackLoop
from epics_collector.processing._inputs import DEPTH, InputTable
from epics_collector.processing._names import PARAM, ProcessingPv
from epics_collector.processing._outputs import OutputPvs
from epics_collector.processing._params import ParamPvs
from epics_collector.processing._runner import Runner
from epics_collector.processing._runs import RunQueue
from epics_collector.processing._tally import Tally
from epics_collector.processing._worker import (
    ProcessorWorker,
    Recipe,
    WorkerHungError,
)

log = logging.getLogger(__name__)
WATCHDOG_MARGIN = 30.0  # seconds past timeout before the watchdog reports a run itself
MISSING_GRACE = 5.0  # seconds before inputs without a value are reported


class ProcessingStates(StrEnum):
    """States of a processing device."""

    IDLE = "Idle"
    RUNNING = "Running"
    FAULT = "Fault"


def output_datatype(config: OutputConfig) -> DataType:
    """The PV datatype of an output."""
    return {
        "float64": lambda: Float(units=config.units, precision=config.precision),
        "int64": lambda: Int(units=config.units),
        "string": lambda: String(),
        "float64[]": lambda: Waveform(units=config.units, precision=config.precision),
        "image": lambda: NDArray(dtype=None),
    }[config.dtype]()


class Processing(Device[ProcessingConfig]):
    """Runs a processor on the newest input values; errors become alarms, never crashes."""

    config_model = ProcessingConfig
    States = ProcessingStates
    parts = (RunCounters, FeedbackLoop)
    #: Each processor parameter is served as ``Param:<name>``.
    PARAM: ClassVar[str] = PARAM

    enable = AttrRW(
        Int(low=0, high=1), name=ProcessingPv.ENABLE, description="1: process (clears Fault)"
    )

    def __init__(
        self,
        config: ProcessingConfig | Mapping[str, Any],
        *,
        data_dir: Path | None = None,
        sources: Sources | None = None,
    ) -> None:
        """Check the config; make the processor's PVs, its worker and its runner.

        One PV per output and per processor parameter; nothing runs until started.
        """
        super().__init__(config, data_dir=data_dir, sources=sources)
        try:
            self.processor: Processor[Any] = self.config.make_processor(self.data_dir)
        except ValueError as error:
            raise ConfigError(f"invalid configuration: {error}") from None
        self.outputs = {
            name: self.add_pv(
                AttrR(
                    output_datatype(out),
                    name=name,
                    description=f"Output {name}",
                    lazy=True,
                    any_thread=True,  # posted by the processing thread (decision 0010)
                    field=f"output_{field_name(name)}",  # never a declared PV's field
                )
            )
            for name, out in self.config.outputs.items()
        }
        self._outputs = OutputPvs(self.outputs)
        #: The processor runs in this worker process; ``self.processor`` only checks params.
        worker = ProcessorWorker(
            Recipe(
                self.config.processor.name,
                self.processor.params.model_dump(mode="json"),
                str(self.data_dir) if self.data_dir is not None else None,
                tuple(self.config.inputs),
                tuple(sys.path),
            ),
            self.config.timeout,
        )
        #: Owns the runs and the state around them (see :class:`Runner`).
        self.runner = Runner(worker, (f.target for f in self.config.feedback))
        # with feedback, a parameter changes what is written to other PVs
        access = Operation.FEEDBACK if self.config.feedback else Operation.CONTROL
        self.params = ParamPvs(
            self.processor,
            self.config.inputs,
            self.data_dir,
            access,
            self.runner.set_params,
            self.report,
        )
        for attr in self.params.attrs.values():
            self.add_pv(attr)
        split = self.config.distribute
        self.inputs = InputTable(
            self.config.inputs,
            self._wake_threadsafe,
            share=(split.index, split.count) if split is not None else None,
        )
        self.runs = RunQueue(self.inputs, str(self.config.trigger))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.feedback = self.add_part(
            FeedbackLoop(
                self.config, self.outputs, self.runner, sources, lambda: self.running, self.report
            )
        )
        self._tally = Tally()
        self.counters = self.add_part(
            RunCounters(
                self._tally,
                self.inputs,
                lambda: self.runner.worker.restarts,
                self.feedback.reset,
                self.report,
            )
        )
        self._wakeup = threading.Event()  # set by input updates (any thread)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriptions: list[Subscription] = []
        self._started = time.monotonic()

    # commands --------------------------------------------------------------------------------

    @enable.on_put
    async def _enable(self, value: int) -> None:
        if value:
            self.runner.clear_errors()
            self.set_state(ProcessingStates.RUNNING)
            self.report("enabled")
            self._wakeup.set()
        else:
            self.set_state(ProcessingStates.IDLE)
            self.report("disabled")

    def _on_loop(self, action: Any, *args: Any) -> None:
        """Run ``action(*args)`` on the event loop (which owns State and Message).

        The counters are published first, so a client that sees the State or Message
        also sees the Count and Errors that led to it.
        """
        self.call_soon(self._after_runs, action, args)

    def _after_runs(self, action: Any, args: tuple[Any, ...]) -> None:
        self.counters.publish()
        action(*args)

    # running ---------------------------------------------------------------------------------

    def _wake_threadsafe(self, name: str | None) -> None:
        """An input changed (any thread): form the runs it makes ready, wake the processor.

        A run's inputs are taken when the update arrives (the trigger's meaning: "the
        newest of the others" is the newest *then*); the processing thread sends the runs
        formed by then to the worker as one batch, so a burst costs one round trip
        between the processes per batch, and the sources' drain thread goes on decoding.
        """
        if not isinstance(self.config.trigger, Period):
            self._form_runs()
        self._wakeup.set()

    def _form_runs(self) -> None:
        """Take every ready run from the inputs into the run queue (bounded, counted)."""
        if self.runner.ready and self.running:  # else they wait in their inputs (bounded)
            self.runs.form()

    def _run_ready(self) -> None:
        """Send the formed runs to the worker in batches until none is left."""
        self._form_runs()  # those that waited while the device was not running
        while self.runner.ready and self.running and not self._stopping.is_set():
            batch = self.runs.take(self.runner.worker.batch_size())
            if not batch:
                break
            self._run_batch(batch, stamp_now=False)

    @property
    def running(self) -> bool:
        """Enabled and healthy."""
        return self.state.value == ProcessingStates.RUNNING

    def _thread_main(self) -> None:
        """The processing thread: every run (in batches, in the worker), resets, teardown.

        It waits on the pipe to the worker with the GIL released, so the sources' drain
        thread keeps decoding meanwhile; the event loop keeps serving and watches the run
        time (:meth:`watchdog`).
        """
        trigger = self.config.trigger
        period = trigger.period if isinstance(trigger, Period) else None
        next_run = time.monotonic()
        while not self._stopping.is_set():
            if period is not None:
                next_run = max(next_run + period, time.monotonic())
                self._stopping.wait(max(0.0, next_run - time.monotonic()))
            else:
                self._wakeup.wait(1.0)  # at least once a second, for the reports
                self._wakeup.clear()
            if self._stopping.is_set():
                break
            self._report_missing()
            self._guarded(self.runner.reset_if_asked, "setup")
            if not self.running:
                continue
            if period is not None:
                if not self.inputs.missing():
                    self._run_batch([self.inputs.take_newest()], stamp_now=True)
                continue
            self._run_ready()
        self._guarded(self.runner.stop, "teardown")

    def _guarded(self, step: Any, what: str) -> None:
        try:
            step()
        except Exception as error:
            log.exception("%s %s", self.config.processor.name, what)
            self._on_loop(self.fault, f"{self.config.processor.name} {what} failed: {error}")

    def _report_missing(self) -> None:
        missing = self.inputs.missing()
        if missing and time.monotonic() - self._started > MISSING_GRACE:
            text = f"inputs without a value: {', '.join(missing)}"
            if self.message.value != text:
                self._on_loop(self.report, text, Severity.MINOR)

    def _run_batch(self, batch: list[dict[str, Input]], stamp_now: bool) -> None:
        """Runs in the worker, in order; each is published, counted and fed back alone."""
        started = time.perf_counter()
        name = self.config.processor.name
        last = time.time() if stamp_now else _newest(batch[-1])
        try:
            results = self.runner.process(batch)
        except WorkerHungError as error:  # killed and replaced: the device never stopped
            self._run_failed(
                f"processing took longer than timeout ({self.config.timeout} s): {error}", last
            )
            self._tally.took(time.perf_counter() - started)
            return
        except Exception as error:  # the worker died (replaced at the next run)
            self._run_failed(f"{name} failed: {type(error).__name__}: {error}", last)
            self._tally.took(time.perf_counter() - started)
            return
        for inputs, result in zip(batch, results, strict=True):
            if self.runner.errors_in_row >= self.config.max_errors:
                break  # Fault is on its way: the rest of the batch is not counted
            self._tally.took(result.seconds)
            stamp = time.time() if stamp_now else _newest(inputs)
            if result.error is not None or result.outputs is None:
                self._run_failed(f"{name} failed: {result.error}", stamp)
                continue
            try:
                self._outputs.publish(result.outputs, stamp, _worst(inputs))
            except Exception as error:  # undeclared outputs, a value of the wrong type
                self._run_failed(f"{name} failed: {type(error).__name__}: {error}", stamp)
                continue
            self.runner.succeeded()
            self._tally.ran()
            if self.feedback.wanted:
                self.call_soon(self.feedback.offer, inputs, result.outputs)

    @scan(0.1)
    async def watchdog(self) -> None:
        """A second line: report a run the worker's own timeout did not end in time.

        A run is ended after ``timeout`` by killing the worker (see
        :class:`ProcessorWorker`); one still busy well after that (a new worker that
        does not start) is reported here, from the event loop.
        """
        if self.runner.overdue(self.config.timeout + WATCHDOG_MARGIN):
            self._failed(
                f"processing took longer than timeout ({self.config.timeout} s) and the "
                "worker was not replaced in time"
            )

    def _run_failed(self, text: str, stamp: float) -> None:
        """A run failed: an error, and with feedback on, a write not made (counted)."""
        self._failed(text, stamp)
        if self.feedback.wanted and self._loop is not None:
            self._on_loop(self.feedback.run_failed, text)

    def _failed(self, text: str, stamp: float | None = None) -> None:
        """A run failed (processing thread) or overran its timeout (event loop)."""
        self._tally.failed()
        in_row = self.runner.failed()
        self._outputs.fail(text, stamp)
        if in_row >= self.config.max_errors:
            text = f"{in_row} errors in a row, last: {text}; put Enable 1 to retry"
            self._on_loop(self.fault, text)
        else:
            self._on_loop(self.report, text, Severity.MAJOR)

    # lifecycle -------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Set up the processor, subscribe to inputs (and feedback targets), start running."""
        self._loop = asyncio.get_running_loop()
        if self.sources is None:
            raise RuntimeError("no source transport: run the device with sources")
        # the worker is up (its processor set up) before the first input arrives
        await asyncio.to_thread(self._guarded, self.runner.start, "setup")
        for slot in self.inputs.slots.values():
            self._subscriptions.append(self.sources.subscribe(slot.pv, slot, queue_size=DEPTH))
        self._subscriptions += self.feedback.subscribe(self.sources)
        self._thread = threading.Thread(target=self._thread_main, name="processing", daemon=True)
        self._thread.start()
        if self.config.enable:
            self.enable.set(1)
            await self._enable(1)
        else:
            self.set_state(ProcessingStates.IDLE)

    async def on_stop(self) -> None:
        """Stop running, close sources, tear the processor down."""
        await self.feedback.close()  # no feedback put starts from now on
        for subscription in self._subscriptions:
            subscription.close()
        if self.sources is not None:
            self.sources.detach()
        if self._thread is not None:
            self._stopping.set()
            self._wakeup.set()
            # a hung processor cannot be stopped: give it the timeout, then leave it
            await asyncio.to_thread(self._thread.join, self.config.timeout + 1.0)


def _newest(inputs: dict[str, Input]) -> float:
    """A run's time: its inputs' newest timestamp."""
    return max(i.timestamp for i in inputs.values())


def _worst(inputs: dict[str, Input]) -> Severity:
    """A run's severity: its inputs' worst (INVALID at most)."""
    return Severity(max(min(i.severity, 3) for i in inputs.values()))
