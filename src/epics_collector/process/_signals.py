"""Ctrl-C and SIGTERM for foreground commands that stop their parts in order."""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

from epics_collector.process._fds import readable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """After :meth:`install`, SIGINT and SIGTERM only set a flag; nothing is raised.

    A ``KeyboardInterrupt`` raised at a random point (inside p4p's client, say) could
    leave a lock held and hang the clean-up that follows, and a ``threading.Event`` set
    from a signal handler can deadlock with a wait on it in the main thread. So the
    handler records the signal and writes a byte to a pipe (the self-pipe trick), and
    :meth:`wait` sleeps on that pipe: woken at once by a signal, never polling.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def install(self) -> StopRequest:
        """Handle SIGINT and SIGTERM from now on (main thread only)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as ``signum`` would (any thread; a signal handler calls it)."""
        self.signal = signum
        self.wake()

    def wake(self) -> None:
        """Wake :meth:`wait` without asking for a stop (any thread: something finished)."""
        with contextlib.suppress(BlockingIOError):  # full: a wake is pending anyway
            os.write(self._write, b"\0")

    @property
    def requested(self) -> bool:
        """Whether a stop signal came."""
        return self.signal is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a stop is asked, :meth:`wake` is called or ``timeout`` s pass.

        Returns whether a stop was asked.
        """
        if not self.requested:
            readable(self._read, timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(self._read, 4096)
        return self.requested
