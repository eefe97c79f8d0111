"""A child that must not outlive its parent (a supervisor killed with SIGKILL)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

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
