"""Readiness over a pipe: a child says it is ready, its parent wakes at once.

The parent of a :class:`~epics_collector.process.ManagedProcess` passes the write end
of a pipe to the child (its number in ``READY_FD_ENV``), as s6's ``notification-fd``
and systemd's ``sd_notify`` do. The child writes one line there when it serves
(:func:`notify_ready`) and closes it. The parent waits on the read end: the line wakes
it, and so does end-of-file, which comes when the child exits before it is ready. No
log file is read over and over, and a child that dies is seen at once.
"""

from __future__ import annotations

import contextlib
import os
import time

from epics_collector.process._fds import readable, readable_async

READY_FD_ENV = "EPICS_COLLECTOR_READY_FD"
"""Set by :class:`ManagedProcess` for its child: the pipe to write the ready line to."""

_adopted: int | None = None  # this process's end of its parent's pipe (adopt_ready_pipe)


def adopt_ready_pipe() -> None:
    """Take the readiness pipe a parent passed (if any), before starting other processes.

    The variable is removed and the descriptor is not inherited, so processes this one
    starts never see the parent's pipe (and never write to a number that is another
    file in them).
    """
    global _adopted
    value = os.environ.pop(READY_FD_ENV, "")
    if not value.isdigit():
        return
    fd = int(value)
    try:
        os.set_inheritable(fd, False)
    except OSError:  # not open here (a launcher closed it): nobody to tell
        return
    _adopted = fd


def notify_ready(line: str) -> None:
    """Print ``line`` and send it to the parent that waits for it (once)."""
    global _adopted
    print(line, flush=True)
    fd, _adopted = _adopted, None
    if fd is None:
        return
    try:
        os.write(fd, line.encode(errors="replace") + b"\n")
    except OSError:  # the parent stopped waiting (it closed its end)
        pass
    finally:
        os.close(fd)


class ReadyPipe:
    """The parent's end: :meth:`child_fd` goes to the child, :meth:`wait` reads its line."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        self._buffer = b""
        self._eof = False

    def child_fd(self) -> int:
        """The write end, for ``pass_fds`` (close it here with :meth:`started`)."""
        return self._write

    def started(self) -> None:
        """The child has its copy: close ours, so the child's exit is end-of-file."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1

    def _read_some(self) -> None:
        try:
            data = os.read(self._read, 4096)
        except BlockingIOError:
            return
        if data:
            self._buffer += data
        else:
            self._eof = True

    @property
    def line(self) -> str | None:
        """The ready line, once it came whole."""
        if b"\n" not in self._buffer:
            return None
        return self._buffer.split(b"\n", 1)[0].decode(errors="replace")

    def _settled(self) -> bool:
        return self.line is not None or self._eof

    def wait(self, timeout: float) -> str | None:
        """The ready line; ``None`` if the child closed the pipe (it exited) first.

        Raises ``TimeoutError`` if neither happens within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self._settled():
            if not readable(self._read, max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no ready line within {timeout:g} s")
            self._read_some()
        return self.line

    async def wait_async(self, timeout: float) -> str | None:
        """:meth:`wait` on the running event loop (the loop goes on meanwhile)."""
        deadline = time.monotonic() + timeout
        while not self._settled():
            if not await readable_async(self._read, max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no ready line within {timeout:g} s")
            self._read_some()
        return self.line

    def close(self) -> None:
        """Close both ends (safe to call twice)."""
        self.started()
        if self._read >= 0:
            with contextlib.suppress(OSError):
                os.close(self._read)
            self._read = -1
