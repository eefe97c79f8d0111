"""A process's exit as something to wait on: a Linux pidfd, never a poll.

``Popen.wait(timeout)`` and ``psutil.wait`` poll with growing sleeps; a pidfd becomes
readable the moment its process exits (Linux 5.3), so a waiter wakes at once, and a
signal sent through it can never reach another process that took the pid meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal

from epics_collector.process._fds import readable, readable_async


class ExitWatch:
    """One process's exit (any process, not only a child); ``with`` closes it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already
            self._fd = -1

    @property
    def gone(self) -> bool:
        """Whether the process has exited (a zombie counts as exited)."""
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the process exits, at most ``timeout`` s; return whether it did."""
        return self._fd < 0 or readable(self._fd, timeout)

    async def wait_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait` on the running event loop."""
        return self._fd < 0 or await readable_async(self._fd, timeout)

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to this process (never to one that took its pid since)."""
        if self._fd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._fd, sig)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ExitWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
