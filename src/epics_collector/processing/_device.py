"""The processing device: inputs -> processor -> output PVs (and optional feedback)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import threading
import time
import typing
from collections import deque
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from epics_collector.core import (
    AttrR,
    AttrRW,
    Bool,
    ConfigError,
    DataType,
    Device,
    Enum,
    Float,
    Int,
    NDArray,
    Operation,
    Severity,
    Sources,
    Status,
    String,
    Subscription,
    Update,
    Waveform,
    command,
    describe_validation_error,
    field_name,
    scan,
)
from epics_collector.processing._api import Input, Processor
from epics_collector.processing._config import Feedback, OutputConfig, Period, ProcessingConfig
from epics_collector.processing._feedback import FeedbackWriters
from epics_collector.processing._inputs import DEPTH, InputTable
from epics_collector.processing._names import PARAM, ProcessingPv
from epics_collector.processing._outputs import OutputPvs
from epics_collector.processing._runner import Runner
from epics_collector.processing._tally import Tally
from epics_collector.processing._worker import (
    ProcessorWorker,
    Recipe,
    WorkerHungError,
)

log = logging.getLogger(__name__)
WATCHDOG_MARGIN = 30.0  # seconds past timeout before the watchdog reports a run itself
FEEDBACK_DRAIN = 5.0  # seconds FeedbackEnable 0 waits for the writes under way
RUN_QUEUE = 4096  # runs formed and waiting for the worker, at most
RUN_QUEUE_BYTES = 256 << 20  # array data those runs may hold, at most
MISSING_GRACE = 5.0  # seconds before inputs without a value are reported
COUNTER_RATE = 10.0  # Count, Errors, Duration... posts per second at most (not per run)


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


def param_datatype(annotation: Any) -> DataType:
    """The PV datatype of a processor parameter (others are served as JSON text)."""
    if annotation is bool:
        return Bool()
    if annotation is int:
        return Int()
    if annotation is float:
        return Float(precision=6)
    if annotation is str:
        return String(max_length=2000)
    if typing.get_origin(annotation) is typing.Literal:
        return Enum(choices=[str(a) for a in typing.get_args(annotation)])
    return String(max_length=2000)


class Processing(Device[ProcessingConfig]):
    """Runs a processor on the newest input values; errors become alarms, never crashes."""

    config_model = ProcessingConfig
    States = ProcessingStates
    #: Each processor parameter is served as ``Param:<name>``.
    PARAM: ClassVar[str] = PARAM

    enable = AttrRW(
        Int(low=0, high=1), name=ProcessingPv.ENABLE, description="1: process (clears Fault)"
    )
    feedback_enable = AttrRW(
        Int(low=0, high=1),
        name=ProcessingPv.FEEDBACK_ENABLE,
        description="1: write feedback outputs to their targets",
        access=Operation.FEEDBACK,
    )
    feedback_skipped = AttrR(
        Int(),
        name=ProcessingPv.FEEDBACK_SKIPPED,
        description="Feedback writes not made: stale, INVALID or non-finite outputs, or failed",
    )
    count = AttrR(Int(), name=ProcessingPv.COUNT, description="Runs that produced outputs")
    errors = AttrR(
        Int(), name=ProcessingPv.ERRORS, description="Runs that failed (each also in Message)"
    )
    skipped = AttrR(
        Int(),
        name=ProcessingPv.SKIPPED,
        description="Input updates replaced by newer ones before processing",
    )
    overruns = AttrR(
        Int(),
        name=ProcessingPv.OVERRUNS,
        description="Times an input's monitor queue filled (updates may be squashed)",
    )
    duration = AttrR(
        Float(units="s", precision=6), name=ProcessingPv.DURATION, description="Last run time"
    )
    duration_max = AttrR(
        Float(units="s", precision=6),
        name=ProcessingPv.DURATION_MAX,
        description="Longest run since Reset",
    )
    worker_restarts = AttrR(
        Int(),
        name=ProcessingPv.WORKER_RESTARTS,
        description="Processor worker processes killed and replaced (hung or died)",
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
        self.params: dict[str, AttrRW[Any]] = {}
        model = type(self.processor.params)
        # with feedback, a parameter changes what is written to other PVs
        access = Operation.FEEDBACK if self.config.feedback else Operation.CONTROL
        for param, field in model.model_fields.items():
            attr: AttrRW[Any] = AttrRW(
                param_datatype(field.annotation),
                name=f"{self.PARAM}{param}",
                field=f"param_{param}",
                description=field.description or f"Parameter {param}",
                access=access,
            )
            attr.put_handler = self._param_putter(param)
            self.params[param] = attr
            self.add_pv(attr)
        self._show_params()
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
        self.worker_restarts.set(0)
        split = self.config.distribute
        self.inputs = InputTable(
            self.config.inputs,
            self._wake_threadsafe,
            share=(split.index, split.count) if split is not None else None,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feedback_off = True  # set by FeedbackEnable 0 before its put completes
        #: One writer per feedback target, the newest output wins (event loop).
        self.writers = FeedbackWriters(
            self.config.feedback,
            put=self._put_feedback,
            readback=self._readback,
            allowed=self._feedback_allowed,
            not_made=self._feedback_not_made,
            report=self.report,
        )
        self._wakeup = threading.Event()  # set by input updates (any thread)
        #: Runs formed when their update arrived, waiting for the worker (oldest first).
        self._runs: deque[dict[str, Input]] = deque()
        self._queued_bytes = 0  # array bytes the queued runs hold
        self._runs_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriptions: list[Subscription] = []
        self._tally = Tally()
        self._started = time.monotonic()

    # parameters ------------------------------------------------------------------------------

    def _show_params(self) -> None:
        values = self.processor.params.model_dump(mode="json")
        for name, attr in self.params.items():
            value = values[name]
            if isinstance(attr.datatype, String) and not isinstance(value, str):
                value = json.dumps(value)  # structured params are served as JSON text
            attr.set(value)

    def _param_putter(self, name: str) -> Any:
        async def put(device: Any, value: Any) -> None:
            model = type(self.processor.params)
            data = self.processor.params.model_dump()
            if (
                isinstance(self.params[name].datatype, String)
                and model.model_fields[name].annotation is not str
            ):
                import json

                value = json.loads(value)
            try:
                params = model.model_validate({**data, name: value})
                candidate = type(self.processor)(params)
                candidate.data_dir = self.data_dir
                candidate.check(set(self.config.inputs))
            except ValidationError as error:
                raise ValueError(describe_validation_error(error)) from None
            self.processor.params = params
            self.runner.set_params(params.model_dump(mode="json"))
            self.report(f"{self.PARAM}{name} = {value!r}")

        return put

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

    @feedback_enable.on_put
    async def _feedback_on(self, value: int) -> None:
        if value and not self.feedback_enable.value:
            # closing the loop starts from a fresh processor state: a PID must not carry
            # the integral it wound up while the loop was open
            self.runner.ask_reset()
        self._feedback_off = not value
        if not value:  # the put answers once no write is on its way, and none starts
            await self.writers.drain(FEEDBACK_DRAIN)
        self.report("feedback enabled" if value else "feedback disabled")

    @command(name=ProcessingPv.RESET)
    async def reset_counters(self) -> None:
        """Zero Count, Errors, Skipped, Overruns, FeedbackSkipped and DurationMax."""
        self._tally.reset()
        self.feedback_skipped.set(0)
        with self.inputs.lock:
            self.inputs.skipped = self.inputs.overruns = 0
        self._publish_counters()

    @scan(1.0 / COUNTER_RATE)
    async def publish_counters(self) -> None:
        """Post the counters that changed (at most COUNTER_RATE times a second)."""
        self._publish_counters()

    def _publish_counters(self) -> None:
        tally = self._tally.snapshot()
        with self.inputs.lock:
            skipped, overruns = self.inputs.skipped, self.inputs.overruns
        for attr, value in (
            (self.count, tally.count),
            (self.errors, tally.errors),
            (self.skipped, skipped),
            (self.duration, tally.duration),
            (self.duration_max, tally.duration_max),
        ):
            if _changed(attr, value):
                attr.set(value)
        restarts = self.runner.worker.restarts
        if _changed(self.worker_restarts, restarts):
            self.worker_restarts.set(
                restarts, severity=Severity.MAJOR if restarts else Severity.NO_ALARM
            )
        if _changed(self.overruns, overruns):
            self.overruns.set(overruns, severity=Severity.MINOR if overruns else Severity.NO_ALARM)
            if overruns:
                self.report(
                    f"an input's monitor queue filled {overruns} times: updates may have "
                    "been squashed; the processor is slower than its inputs",
                    Severity.MINOR,
                )

    def _on_loop(self, action: Any, *args: Any) -> None:
        """Run ``action(*args)`` on the event loop (which owns State and Message).

        The counters are published first, so a client that sees the State or Message
        also sees the Count and Errors that led to it.
        """
        self.call_soon(self._after_runs, action, args)

    def _after_runs(self, action: Any, args: tuple[Any, ...]) -> None:
        self._publish_counters()
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
        if not (self.runner.ready and self.running):
            return  # the updates wait in their inputs (bounded there) until Enable
        trigger = str(self.config.trigger)
        with self._runs_lock:
            while self.inputs.ready(trigger):
                run = self.inputs.take(trigger)
                self._runs.append(run)
                self._queued_bytes += _nbytes(run)
                # the processor falls behind: the oldest runs go (counted in Skipped)
                while len(self._runs) > RUN_QUEUE or self._queued_bytes > RUN_QUEUE_BYTES:
                    self._queued_bytes -= _nbytes(self._runs.popleft())
                    with self.inputs.lock:
                        self.inputs.skipped += 1

    def _run_ready(self) -> None:
        """Send the formed runs to the worker in batches until none is left."""
        self._form_runs()  # those that waited while the device was not running
        while self.runner.ready and self.running and not self._stopping.is_set():
            most = self.runner.worker.batch_size()
            with self._runs_lock:
                batch = [self._runs.popleft() for _ in range(min(most, len(self._runs)))]
                self._queued_bytes -= sum(_nbytes(run) for run in batch)
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
            if self.config.feedback and self.feedback_enable.value:
                self.call_soon(self._offer_feedback, inputs, result.outputs)

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
        if self.config.feedback and self.feedback_enable.value and self._loop is not None:
            targets = ", ".join(entry.target for entry in self.config.feedback)
            self._on_loop(self._feedback_not_made, f"feedback to {targets} skipped: {text}")

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

    # feedback --------------------------------------------------------------------------------

    def _offer_feedback(self, inputs: dict[str, Input], outputs: Any) -> None:
        """Offer a run's feedback outputs to their targets' writers (event loop).

        What this run's outputs and inputs say is checked here (an unusable input, an
        output that is not a finite number or is INVALID); staleness and limits are
        checked by the writer when the put starts.
        """
        if not self._feedback_allowed():
            return
        newest = max(i.timestamp for i in inputs.values())
        suspended = _unusable_input(inputs)
        for index, entry in enumerate(self.config.feedback):
            if entry.output not in outputs:
                continue
            if suspended:  # whatever the processor made of it (pid clamps NaN to low)
                self._feedback_not_made(
                    f"feedback to {entry.target} suspended: {suspended}", Severity.MAJOR
                )
                continue
            output = outputs[entry.output]
            reason = self._feedback_refusal(entry, output)
            if reason:
                self._feedback_not_made(f"feedback to {entry.target} skipped: {reason}")
                continue
            self.writers.offer(index, float(output), newest)

    def _feedback_allowed(self) -> bool:
        return bool(
            self.config.feedback
            and not self._feedback_off
            and self.feedback_enable.value
            and self.running
        )

    async def _put_feedback(self, target: str, value: float) -> None:
        assert self.sources is not None
        await self.sources.put(target, value)

    def _readback(self, target: str) -> float | None:
        current = self.runner.target(target)
        return None if current is None else float(current.value)

    def _feedback_not_made(self, text: str, severity: Severity = Severity.MINOR) -> None:
        """Count and show a feedback write that was not made (event loop)."""
        self.feedback_skipped.set(self.feedback_skipped.value + 1, severity=Severity.MINOR)
        self.report(text, severity)

    def _feedback_refusal(self, entry: Feedback, output: Any) -> str:
        try:
            number = float(output)
        except (TypeError, ValueError):
            return f"the output {entry.output} is not a number ({output!r})"
        if not math.isfinite(number):  # never clamp a NaN into a limit and write that
            return f"the output {entry.output} is {number}"
        if self.outputs[entry.output].reading.severity >= Severity.INVALID:
            return "the output is INVALID"
        return ""

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
        for entry in self.config.feedback:
            readback = _Readback(self.runner, entry.target)
            self._subscriptions.append(self.sources.subscribe(entry.target, readback, queue_size=4))
        self._thread = threading.Thread(target=self._thread_main, name="processing", daemon=True)
        self._thread.start()
        if self.config.enable:
            self.enable.set(1)
            await self._enable(1)
        else:
            self.set_state(ProcessingStates.IDLE)

    async def on_stop(self) -> None:
        """Stop running, close sources, tear the processor down."""
        self._feedback_off = True  # no feedback put starts from now on
        await self.writers.drain(FEEDBACK_DRAIN)
        for subscription in self._subscriptions:
            subscription.close()
        if self.sources is not None:
            self.sources.detach()
        if self._thread is not None:
            self._stopping.set()
            self._wakeup.set()
            # a hung processor cannot be stopped: give it the timeout, then leave it
            await asyncio.to_thread(self._thread.join, self.config.timeout + 1.0)


class _Readback:
    """Keeps the current value of a feedback target (for max_step)."""

    def __init__(self, runner: Runner, target: str) -> None:
        self.runner, self.target = runner, target

    def on_update(self, update: Update) -> None:
        self.runner.target_seen(self.target, update)

    def on_connection(self, connected: bool, reason: str) -> None:
        if not connected:
            self.runner.target_seen(self.target, None)

    def on_loss(self, missing: int | None) -> None:
        """Only the target's newest value matters (for max_step)."""


def _unusable_input(inputs: dict[str, Input]) -> str:
    """Why feedback must not act on these inputs (a scalar NaN or inf, INVALID), or ""."""
    for name, given in inputs.items():
        if given.severity >= Severity.INVALID:
            return f"input {name} is INVALID"
        value = given.value
        if isinstance(value, float | int | np.floating | np.integer) and not math.isfinite(
            float(value)
        ):
            return f"input {name} is {float(value)}"
    return ""


def _newest(inputs: dict[str, Input]) -> float:
    """A run's time: its inputs' newest timestamp."""
    return max(i.timestamp for i in inputs.values())


def _worst(inputs: dict[str, Input]) -> Severity:
    """A run's severity: its inputs' worst (INVALID at most)."""
    return Severity(max(min(i.severity, 3) for i in inputs.values()))


def _nbytes(run: dict[str, Input]) -> int:
    """The array bytes a run holds (what queued runs cost in memory)."""
    return sum(v.value.nbytes for v in run.values() if isinstance(v.value, np.ndarray))


def _changed(attr: AttrR[Any], value: Any) -> bool:
    """Whether ``attr`` must be posted: a new value, or none posted yet (still UNDEFINED)."""
    return attr.value != value or attr.reading.status == Status.UNDEFINED
