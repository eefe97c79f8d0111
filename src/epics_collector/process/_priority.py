"""CPU priority: work that must not slow recording takes the CPU recording leaves."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

LOWEST = 19  # the highest niceness Linux knows


def lower_priority(niceness: int = LOWEST, thread: int | None = None) -> int:
    """Raise a thread's niceness (the calling one's) to at least ``niceness``; its niceness.

    On Linux a niceness is per thread, and a thread started later inherits its
    starter's; elsewhere it is the process's (``thread`` None: the calling process).
    Never raises the priority back; where changing it is not permitted the thread keeps
    what it had.
    """
    if thread is None:  # (elsewhere a thread id is no process id: 0, the calling process)
        thread = threading.get_native_id() if sys.platform == "linux" else 0
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
    except (OSError, AttributeError):
        return 0
    if niceness > now:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, thread, min(niceness, LOWEST))
            now = os.getpriority(os.PRIO_PROCESS, thread)
    return now


def lower_process_priority(niceness: int) -> None:
    """:func:`lower_priority` of every thread of this process (and those they start)."""
    try:
        threads = [int(task) for task in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: a niceness is the process's own
        lower_priority(niceness)
        return
    for thread in threads:
        lower_priority(niceness, thread)
