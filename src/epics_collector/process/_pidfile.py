"""Pid files of supervised children, so that a new supervisor can stop what an old left.

A pid alone may have been reused by an unrelated process since; the file also keeps the
process's start time (``/proc/PID/stat``, field 22) and a marker that must appear in its
command line, and a leftover is only stopped when all three match.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None if it is gone.

    A zombie (dead, not yet reaped by its parent) counts as gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return None if fields[0] == "Z" else int(fields[19])  # start time is field 22


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class PidFile:
    """``path`` holds the pid of the child that runs with ``marker`` in its command line.

    :meth:`stop_leftover` checks the marker written with the pid and this one.
    """

    def __init__(self, path: Path, marker: str) -> None:
        self.path, self.marker = path, marker

    def write(self, pid: int) -> None:
        """Record a child just started."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "start": _start_time(pid), "marker": self.marker}))
        os.replace(tmp, self.path)  # a reader sees the old file or the new one

    def clear(self) -> None:
        """The child is stopped: forget it."""
        self.path.unlink(missing_ok=True)

    def stop_leftover(self, timeout: float = 5.0) -> int | None:
        """Kill the recorded child if it still runs (SIGKILL); its pid, else None."""
        try:
            recorded = json.loads(self.path.read_text())
            pid, start = int(recorded["pid"]), recorded.get("start")
            markers = [self.marker, str(recorded.get("marker", ""))]
        except (OSError, ValueError, KeyError, TypeError):
            self.clear()
            return None
        alive, command = _start_time(pid), _command_line(pid)
        if alive is None or alive != start or not all(m in command for m in markers):
            self.clear()
            return None
        log.warning("stopping %s left running by an earlier instance (pid %d)", self.marker, pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _start_time(pid) == start and time.monotonic() < deadline:
            time.sleep(0.02)
        self.clear()
        return pid
