"""A child Python process: spawned with ``sys.executable -m``, awaited, stopped in ``finally``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from epics_collector.process._exits import ExitWatch
from epics_collector.process._parent import PARENT_ENV
from epics_collector.process._ready import READY_FD_ENV, ReadyPipe


class ProcessError(RuntimeError):
    """A child process failed to become ready or exited unexpectedly."""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Wait until ``predicate()`` holds; raise ``TimeoutError`` naming ``what`` if not in time."""
    if not wait_until(predicate, timeout, interval):
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


async def wait_for_async(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.005
) -> None:
    """:func:`wait_for` inside an event loop: the loop keeps working while it waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class _Child:
    """``with`` starts the child and always stops it (SIGTERM, then kill)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> int:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedProcess(_Child):
    """Run ``python -m MODULE ARGS`` as a child and always stop it.

    Standard input is a pipe that stays open for the child's lifetime, because an
    EPICS IOC shell exits when its standard input closes. Stopping sends SIGTERM,
    waits ``stop_timeout`` seconds, then kills. ``launcher`` is put in front of the
    command (e.g. ``ip netns exec NS`` to run the child in a network namespace); it must
    exec the command, so that signals reach the child. Output goes to a temporary file, or
    is appended to ``log_path`` (rotated once it passes ``LOG_LIMIT`` bytes);
    :meth:`output` is what this run printed.

    The child runs in its own process group, so a terminal's Ctrl-C (SIGINT to the
    foreground group) reaches only its owner, which stops its children in order. The
    child is told its owner's pid (``PARENT_ENV``): ``epics_collector`` processes then
    stop when the owner dies, even by SIGKILL (:func:`watch_parent`), and an IOC shell
    sees its standard input close.

    The child also gets a readiness pipe (``READY_FD_ENV``): an ``epics_collector``
    process writes its ready line there (:func:`notify_ready`), and
    :meth:`wait_notified` wakes on that line, or at once when the child exits first.
    """

    LOG_LIMIT = 10 * 1024 * 1024

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        capture_output: bool = True,
        stop_timeout: float = 5.0,
        log_path: Path | None = None,
        launcher: Sequence[str] = (),
        log_opener: Callable[[], IO[bytes]] | None = None,
    ) -> None:
        self.command = [*launcher, sys.executable, "-m", module, *args]
        self.env = dict(os.environ if env is None else env)
        self.capture_output = capture_output
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self._log_opener = log_opener  # opens the log instead of log_path (the owner's way)
        self._log_start = 0
        self._popen: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: a chatty child must never block on a full pipe.
        self._log: IO[bytes] | None = None
        self._final_output = ""
        self._ready: ReadyPipe | None = None
        self._exit: ExitWatch | None = None

    @property
    def pid(self) -> int:
        """The child's process id (only while started)."""
        return self.popen.pid

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The underlying :class:`subprocess.Popen`."""
        if self._popen is None:
            raise ProcessError(f"{self.command!r} is not started")
        return self._popen

    def start(self) -> Self:
        """Spawn the child (without waiting for readiness)."""
        self._log = self._open_log() if self.capture_output else None
        self._log_start = self._log.tell() if self._log else 0
        self._ready = ready = ReadyPipe()
        try:
            self._popen = subprocess.Popen(
                self.command,
                env={
                    **self.env,
                    PARENT_ENV: str(os.getpid()),
                    READY_FD_ENV: str(ready.child_fd()),
                },
                stdin=subprocess.PIPE,
                stdout=self._log,
                stderr=subprocess.STDOUT if self._log else None,
                process_group=0,
                pass_fds=(ready.child_fd(),),
            )
        finally:
            ready.started()
        self._exit = ExitWatch(self._popen.pid)
        return self

    def _open_log(self) -> IO[bytes]:
        if self._log_opener is not None:
            log = self._log_opener()
            log.seek(0, os.SEEK_END)
            return log
        if self.log_path is None:
            return tempfile.TemporaryFile()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists() and self.log_path.stat().st_size > self.LOG_LIMIT:
            self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        log = self.log_path.open("a+b")
        log.seek(0, os.SEEK_END)
        return log

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        """Wait until ``ready()`` is true; raise :class:`ProcessError` with the output if not."""
        if not wait_until(lambda: ready() or not self.running, timeout):
            self.stop()
            raise ProcessError(f"{self.command!r} not ready after {timeout} s:\n{self.output()}")
        if not self.running:
            raise ProcessError(
                f"{self.command!r} exited with {self.popen.returncode}:\n{self.output()}"
            )

    def _ready_pipe(self) -> ReadyPipe:
        if self._ready is None:
            raise ProcessError(f"{self.command!r} is not started")
        return self._ready

    def wait_notified(self, timeout: float = 20.0) -> str:
        """Wait for the child's ready line (:func:`notify_ready`) and return it.

        Raises :class:`ProcessError` with the child's output if it exits first (seen at
        once: its end of the pipe closes) or is not ready within ``timeout`` s (it is
        stopped then).
        """
        try:
            line = self._ready_pipe().wait(timeout)
        except TimeoutError:
            self.stop()
            raise ProcessError(
                f"{self.command!r} not ready after {timeout} s:\n{self.output()}"
            ) from None
        if line is None:
            raise ProcessError(self._exited_before_ready())
        return line

    async def wait_notified_async(self, timeout: float) -> str | None:
        """The ready line on the running event loop; ``None`` if the child exited first.

        Raises ``TimeoutError`` if neither comes within ``timeout`` s.
        """
        return await self._ready_pipe().wait_async(timeout)

    def _exit_watch(self) -> ExitWatch:
        if self._exit is None:
            raise ProcessError(f"{self.command!r} is not started")
        return self._exit

    def wait_exit(self, timeout: float | None = None) -> bool:
        """Wait until the child exits, at most ``timeout`` s; return whether it did.

        Woken by the exit itself (a pidfd), unlike ``Popen.wait``, which polls. Once it
        returned true the exit status is collected (``popen.returncode``).
        """
        return self._collected(self._exit_watch().wait(timeout))

    async def wait_exit_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait_exit` on the running event loop."""
        return self._collected(await self._exit_watch().wait_async(timeout))

    def _collected(self, exited: bool) -> bool:
        if exited:
            self.popen.wait()  # a zombie now: its status at once
        return exited

    def _exited_before_ready(self) -> str:
        self.wait_exit(self.stop_timeout)  # its pipe closed: it is exiting
        code = self.popen.poll()
        if code is None:
            self.stop()
            return f"{self.command!r} closed its readiness pipe unready:\n{self.output()}"
        return f"{self.command!r} exited with {code}:\n{self.output()}"

    @property
    def running(self) -> bool:
        """Whether the child is alive."""
        return self._popen is not None and self._popen.poll() is None

    def stop(self) -> int:
        """SIGTERM, wait, then kill; return the exit code. Safe to call twice."""
        popen = self._popen
        if popen is None:
            return 0
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            if not self.wait_exit(self.stop_timeout):
                popen.kill()
            popen.wait()
        if popen.stdin is not None:
            popen.stdin.close()
        for pipe_or_watch in (self._ready, self._exit):
            if pipe_or_watch is not None:
                pipe_or_watch.close()
        if self._log is not None and not self._log.closed:
            self._final_output = self.output()
            self._log.close()
        return popen.returncode

    def output(self) -> str:
        """Everything the child printed so far (when captured)."""
        if self._log is None:
            return ""
        if self._log.closed:
            return self._final_output
        # pread: the child shares the file offset, which must not move under it
        fd = self._log.fileno()
        size = os.fstat(fd).st_size - self._log_start
        return os.pread(fd, max(size, 0), self._log_start).decode(errors="replace")


class ReadyProcess(_Child):
    """A child ``python -m`` process that is ready once it prints ``ready_line``.

    The one way the sim IOC, test sources and devices are run as children; ``with``
    starts it (waiting for readiness) and always stops it.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        ready_line: str,
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        launcher: Sequence[str] = (),
    ) -> None:
        self.ready_line, self.timeout = ready_line, timeout
        self.process = ManagedProcess(module, args, env=env, launcher=launcher)

    def start(self) -> Self:
        """Start the child and wait until it says it is ready (its readiness pipe)."""
        self.process.start()
        line = self.process.wait_notified(self.timeout)
        if not line.startswith(self.ready_line):
            self.process.stop()
            raise ProcessError(f"{self.process.command!r} said {line!r}, not {self.ready_line!r}")
        return self

    def stop(self) -> int:
        """Stop the child (SIGTERM, then kill); return its exit code."""
        return self.process.stop()
