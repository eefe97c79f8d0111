"""Who may set a PV: the owner-thread check and the one hand-off to a loop.

Each served attribute belongs to the thread of its device's event loop: only that
thread sets it, and other threads hand work to it with :meth:`Device.call_soon
<epics_collector.core.Device.call_soon>`. An attribute declared with ``any_thread=True``
(a processor's outputs, posted from the processing thread: decision 0010) may be set
from any thread; storing its reading and posting it happen under its own lock either way.

A set from another thread raises :class:`WrongThreadError`, always: the check is one
comparison of thread idents on the hot path of every post (``bench/pva_baseline.py``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class WrongThreadError(RuntimeError):
    """An attribute was set from a thread that does not own it."""


def check_owner(name: str, owner: int | None) -> None:
    """Raise :class:`WrongThreadError` unless this thread is ``owner`` (None: anyone)."""
    if owner is not None and threading.get_ident() != owner:
        raise WrongThreadError(
            f"{name} set from thread {threading.current_thread().name!r}, not from its "
            "device's event loop: hand the work over with Device.call_soon"
        )


class LoopHandOff:
    """Runs callables on one event loop, from any thread (nothing once the loop is gone).

    A call that raises is logged with its traceback: a hand-off is never silent.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: int | None = None  # the loop's thread, once bound

    def bind(self) -> None:
        """Hand off to the running loop from now on (called on it)."""
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on the loop soon (in order of the calls), from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._run, function, args)
        except RuntimeError:  # closed between the check and the call: it is stopping
            log.debug("loop closed; %r not run", function)

    @staticmethod
    def _run(function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            function(*args)
        except Exception:
            log.exception(
                "%s failed on the event loop", getattr(function, "__qualname__", function)
            )
