"""A child that must not outlive its parent (a supervisor killed with SIGKILL)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
import time

from epics_collector.process._exits import ExitWatch
from epics_collector.process._ready import adopt_ready_pipe

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int) -> None:
    """Ask the kernel to send SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``).

    SIGKILL, not SIGTERM: a parent that dies without stopping its children (kill -9, a
    crash) may leave a child that is hung and would never run a SIGTERM handler
    (issue 18, finding 5). A device's spill is crash-safe, and its restart marks the
    outage with a gap row. A parent that stops normally stops its children itself
    (SIGTERM first). If the parent is already gone (it died before this ran), exit now.
    Elsewhere than Linux this only logs that the guard is not available.
    """
    if not sys.platform.startswith("linux"):
        log.warning("exit_with_parent: not supported on %s", sys.platform)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("exit_with_parent: prctl failed (errno %d)", ctypes.get_errno())
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


PARENT_ENV = "EPICS_COLLECTOR_PARENT_PID"
"""Set by :class:`ManagedProcess` for its child: the pid the child must not outlive."""


def watch_parent(parent_pid: int, grace: float = 10.0) -> None:
    """Stop this process cleanly when ``parent_pid`` is no longer its parent.

    A thread waits on the parent's exit (a pidfd: woken at once, no polling; unlike
    ``PR_SET_PDEATHSIG`` not tied to the parent *thread* that started the child). When
    the parent is gone (killed with SIGKILL, say) this process gets SIGTERM, so it stops
    the way it always does (a factory stops its devices, a device flushes its spill); if
    it has not exited ``grace`` seconds later, it exits at once.
    """

    def watch() -> None:
        with ExitWatch(parent_pid) as parent:
            if os.getppid() == parent_pid:  # else it is gone already (we were adopted)
                parent.wait()
        log.warning("parent process %d is gone: stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)  # the clean stop's time; past it, do not linger
        log.error("not stopped %g s after the parent died: exiting now", grace)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def as_child() -> None:
    """What a process does first when a :class:`ManagedProcess` may have started it.

    It watches its owner (:func:`watch_parent_from_environment`) and takes the
    readiness pipe its owner waits on (:func:`adopt_ready_pipe`); outside a
    ``ManagedProcess`` neither variable is set and nothing happens.
    """
    watch_parent_from_environment()
    adopt_ready_pipe()


def watch_parent_from_environment() -> None:
    """Call :func:`watch_parent` if a :class:`ManagedProcess` parent asked for it.

    The variable is removed, so processes this one starts do not inherit it.
    """
    value = os.environ.pop(PARENT_ENV, "")
    if value.isdigit():
        watch_parent(int(value))
