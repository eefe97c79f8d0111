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
    """Ask the kernel to send SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``).

    If the parent is already gone (it died before this ran), terminate now. Elsewhere
    than Linux this only logs that the guard is not available.
    """
    if not sys.platform.startswith("linux"):
        log.warning("exit_with_parent: not supported on %s", sys.platform)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("exit_with_parent: prctl failed (errno %d)", ctypes.get_errno())
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
