"""A processor in a worker process: a processor that hangs, even holding the GIL, is killed.

The device runs its processor in one child process (``python -m
epics_collector.processing._worker_main``) and waits for each run at most ``timeout``
seconds. A worker that does not answer in time is killed (SIGKILL: a process spinning
in C with the GIL held runs no handler) and replaced by a fresh one (``setup`` again),
and the run fails with :class:`WorkerHungError`; the device itself never stops serving.

Messages go over the child's standard input and output (``multiprocessing.connection``
framing; the child moves its own standard output to standard error first, so a
plugin's ``print`` cannot break them). Runs that are ready together go as one batch
(at most ``BATCH`` runs: one round trip between the processes instead of one per run),
each with its own outputs or error and its own duration. An array input of more than
``SHM_BYTES`` is copied once into a shared-memory block per input and batch position
(grown when needed) and the child reads it in place; smaller values are pickled.
The child asks the kernel to kill it when the device process dies
(``PR_SET_PDEATHSIG``); it is always started from one long-lived thread of the worker,
since the kernel ties that signal to the thread that started the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from epics_collector.processing._api import Input, Processor, load_processor

log = logging.getLogger(__name__)
MODULE = "epics_collector.processing._worker_main"  # runs main() below
SHM_BYTES = 64 * 1024  # arrays larger than this go through shared memory
BATCH = 256  # runs sent to the worker at once, at most
START_TIMEOUT = 60.0  # seconds a new worker has to import and set up its processor


class WorkerError(RuntimeError):
    """The processor raised in the worker (the text names the error)."""


class WorkerHungError(RuntimeError):
    """The worker did not answer in time: it was killed and replaced."""


@dataclass(frozen=True)
class RunResult:
    """One run in the worker: its outputs, or the error it raised; how long it took."""

    outputs: dict[str, Any] | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class Recipe:
    """What a worker needs to build the processor: registered name, params, data dir."""

    name: str
    params: dict[str, Any]
    data_dir: str | None
    inputs: tuple[str, ...]
    path: tuple[str, ...] = ()  # the device's sys.path: its plugins import in the worker too


class _Spawner:
    """One long-lived thread that starts the worker processes (see the module text)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="worker-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            command, answer = request
            try:
                answer.put(
                    subprocess.Popen(
                        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
                    )
                )
            except Exception as error:  # handed to the caller, who raises it
                answer.put(error)

    def spawn(self, command: list[str]) -> subprocess.Popen[bytes]:
        answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._requests.put((command, answer))
        result = answer.get()
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        self._requests.put(None)
        self._thread.join(5)


class ProcessorWorker:
    """The device's side of the worker: one call at a time (the :class:`Runner`'s lock)."""

    def __init__(self, recipe: Recipe, timeout: float) -> None:
        self.recipe, self.timeout = recipe, timeout
        self.restarts = 0  # workers killed and replaced (hung, or died)
        self._spawner = _Spawner()
        self._popen: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None
        self._blocks: dict[tuple[str, int], SharedMemory] = {}
        self._run_seconds = timeout  # mean run time (see batch_size): unknown yet

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start a worker and set its processor up (raises WorkerError if setup fails)."""
        self._popen = self._spawner.spawn([sys.executable, "-m", MODULE, str(os.getpid())])
        assert self._popen.stdin is not None and self._popen.stdout is not None
        # own copies of the pipes' descriptors: the connections and the Popen pipes each
        # close theirs, never one number twice
        self._send = Connection(os.dup(self._popen.stdin.fileno()), readable=False)
        self._receive = Connection(os.dup(self._popen.stdout.fileno()), writable=False)
        self._call(("setup", self.recipe), START_TIMEOUT)

    def setup(self) -> None:
        """Set the processor up again (fresh state), in the running worker."""
        self._call(("reset",), self.timeout)

    def stop(self) -> None:
        """Tear the processor down and end the worker (killed if it does not answer)."""
        if self._popen is not None and self._popen.poll() is None:
            with contextlib.suppress(WorkerError, WorkerHungError):
                self._call(("teardown",), min(self.timeout, 5.0), restart=False)
        self._kill()
        for block in self._blocks.values():
            block.close()
            with contextlib.suppress(FileNotFoundError):
                block.unlink()
        self._blocks.clear()
        self._spawner.close()

    def _kill(self) -> None:
        popen, self._popen = self._popen, None
        for connection in (self._send, self._receive):
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.close()
        self._send = self._receive = None
        if popen is not None:
            if popen.poll() is None:
                popen.kill()
            popen.wait()
            for pipe in (popen.stdin, popen.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    # runs ------------------------------------------------------------------------------

    def process(
        self, runs: Sequence[Mapping[str, Input]], params: Mapping[str, Any] | None = None
    ) -> list[RunResult]:
        """Runs in the worker (at most :data:`BATCH`), in order: one result each.

        ``params``: new parameters, used from this batch on (and by a replacing worker).

        Raises WorkerHungError when the batch takes longer than ``timeout`` (the worker
        is then killed and replaced; the caller sizes batches to take much less, see
        :meth:`batch_size`), WorkerError when the worker died.
        """
        payload = [
            {name: self._pack(name, slot, given) for name, given in inputs.items()}
            for slot, inputs in enumerate(runs)
        ]
        if params is not None:
            self.recipe = dataclasses.replace(self.recipe, params=dict(params))
        answers = self._call(("process", payload, params), self.timeout)
        results = [RunResult(*answer) for answer in answers]
        for result in results:  # the mean run time, weighted to the recent runs
            self._run_seconds += 0.05 * (result.seconds - self._run_seconds)
        return results

    def batch_size(self) -> int:
        """Runs to send at once: as many as take a quarter of ``timeout``, at most BATCH.

        After a hung run (or before any run) it is 1, until runs are seen to be quick.
        """
        return max(1, min(BATCH, int(0.25 * self.timeout / max(self._run_seconds, 1e-6))))

    def _pack(self, name: str, slot: int, given: Input) -> tuple[Any, ...]:
        value = given.value
        if isinstance(value, np.ndarray) and value.nbytes > SHM_BYTES:
            block = self._blocks.get((name, slot))
            if block is None or block.size < value.nbytes:
                if block is not None:
                    block.close()
                    block.unlink()
                block = SharedMemory(create=True, size=value.nbytes * 2)
                self._blocks[(name, slot)] = block
            view = np.ndarray(value.shape, value.dtype, buffer=block.buf)
            view[...] = value
            del view
            shared = ("shm", block.name, value.shape, value.dtype.str)
            return (shared, given.timestamp, given.severity, given.units)
        return (("value", value), given.timestamp, given.severity, given.units)

    def _call(self, message: tuple[Any, ...], timeout: float, restart: bool = True) -> Any:
        if self._popen is None or self._popen.poll() is not None:
            if not restart:
                raise WorkerError("the worker is not running")
            self._replace("the worker had died")
        assert self._send is not None and self._receive is not None
        try:
            self._send.send(message)
            answered = self._receive.poll(timeout)
            reply = self._receive.recv() if answered else None
        except (OSError, EOFError) as error:
            code = self._popen.poll() if self._popen is not None else None
            if restart:
                self._replace(f"the worker died (exit {code})")
            raise WorkerError(f"the worker died (exit {code}): {error}") from None
        if reply is None:
            self._run_seconds = timeout  # one run at a time until runs are quick again
            if restart:
                self._replace(f"no answer in {timeout:g} s")
            raise WorkerHungError(f"no answer in {timeout:g} s: the worker was killed and replaced")
        if reply[0] == "error":
            raise WorkerError(reply[1])
        return reply[1]

    def _replace(self, why: str) -> None:
        """Kill the worker and start a fresh one (its processor set up again)."""
        log.warning("processor worker replaced: %s", why)
        self._kill()
        self.restarts += 1
        self.start()


# the child -------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


class _Child:
    """The worker's loop: build, set up, run and tear down one processor."""

    def __init__(self) -> None:
        self.processor: Processor[Any] | None = None
        self.blocks: dict[str, SharedMemory] = {}

    def handle(self, message: tuple[Any, ...]) -> Any:
        kind = message[0]
        if kind == "setup":
            recipe: Recipe = message[1]
            sys.path[:0] = [p for p in recipe.path if p not in sys.path]
            cls = load_processor(recipe.name)
            processor = cls(cls.params_model.model_validate(recipe.params))
            processor.data_dir = Path(recipe.data_dir) if recipe.data_dir else None
            processor.check(set(recipe.inputs))
            processor.setup()
            self.processor = processor
            return None
        assert self.processor is not None, "no setup yet"
        if kind == "reset":
            self.processor.setup()
            return None
        if kind == "teardown":
            self.processor.teardown()
            return None
        _, payload, params = message
        if params is not None:
            self.processor.params = type(self.processor.params).model_validate(params)
        return [self._run(run) for run in payload]

    def _run(self, packed: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
        assert self.processor is not None
        started = time.perf_counter()
        try:
            inputs = {name: self._unpack(*value) for name, value in packed.items()}
            with warnings.catch_warnings():  # invalid math fails the run, as a calc alarms
                warnings.simplefilter("error", RuntimeWarning)
                outputs = dict(self.processor.process(inputs))
        except Exception as error:
            return None, f"{type(error).__name__}: {error}", time.perf_counter() - started
        plain = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in outputs.items()}
        return plain, None, time.perf_counter() - started

    def _unpack(self, value: tuple[Any, ...], stamp: float, severity: int, units: str) -> Input:
        if value[0] == "shm":
            _, name, shape, dtype = value
            block = self.blocks.get(name)
            if block is None:
                block = self.blocks[name] = SharedMemory(name=name)
                # the device owns (and unlinks) the block; this process only reads it
                with contextlib.suppress(Exception):
                    resource_tracker.unregister(block._name, "shared_memory")  # type: ignore[attr-defined]  # noqa: SLF001
            array = np.ndarray(shape, np.dtype(dtype), buffer=block.buf)
            array.flags.writeable = False
            return Input(array, stamp, severity, units)
        return Input(value[1], stamp, severity, units)


def main(argv: list[str] | None = None) -> None:
    """Serve one processor on standard input/output until told to stop or input ends."""
    parent = int((argv or sys.argv)[1]) if len(argv or sys.argv) > 1 else os.getppid()
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the device stops it (Ctrl-C: its group)
    out = os.dup(1)
    os.dup2(2, 1)  # a plugin's print goes to standard error, never into the messages
    receive, send = Connection(os.dup(0), writable=False), Connection(out, readable=False)
    child = _Child()
    while True:
        try:
            message = receive.recv()
        except (EOFError, OSError):
            return
        try:
            send.send(("ok", child.handle(message)))
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            log.debug("%s", traceback.format_exc())
            send.send(("error", text))
        if message[0] == "teardown":
            return
